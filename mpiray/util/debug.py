"""ray.util.debug's log helpers, which libraries built on Ray import: log_once(key) is
True the first time a process asks for key (and, with periodic logging, again once a
minute has passed since the last first time)."""

from __future__ import annotations

import time

_seen = set()
_disabled = False
_periodic = False
_last_first = 0.0
PERIOD_S = 60.0


def log_once(key) -> bool:
    global _last_first
    if _disabled:
        return False
    now = time.time()
    if key not in _seen:
        _seen.add(key)
        _last_first = now
        return True
    if _periodic and now - _last_first > PERIOD_S:   # (a minute on: every key may log again)
        _seen.clear()
        _last_first = now
    return False


def disable_log_once_globally() -> None:
    """log_once() answers False from now on, in this process."""
    global _disabled
    _disabled = True


def enable_periodic_logging() -> None:
    """log_once() forgets what it saw a minute after the last first time, in this process."""
    global _periodic
    _periodic = True


def reset_log_once(key=None) -> None:
    """key (every key: None) may log once more."""
    if key is None:
        _seen.clear()
    else:
        _seen.discard(key)
