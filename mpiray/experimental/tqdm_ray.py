"""ray.experimental.tqdm_ray: progress bars for tasks and actors.

    tqdm(...).update(n) ──► a progress line "desc: 40%|████      | 40/100" at most every
        flush_interval_s, and at close ──► the process's stderr ──► (a worker's) the
        driver's stderr, with Ray's "(task pid=N)" prefix, as every worker's output

Ray renders bars on the driver with the tqdm package; here each update is a line, so no
dependency is needed and lines from many workers never overwrite one another.
"""

from __future__ import annotations

import sys
import time

WIDTH = 20


class tqdm:
    """tqdm's common subset: iterate, update(n), set_description, close, context manager."""

    def __init__(self, iterable=None, desc=None, total=None, position=None,
                 flush_interval_s: float = 1.0, **_tqdm_only):
        if total is None and iterable is not None:
            try:
                total = len(iterable)
            except (TypeError, AttributeError):
                total = None
        self._iterable = iterable
        self._desc = desc or ""
        self._total = total
        self._pos = position or 0
        self._x = 0
        self._closed = False
        self._interval = float(flush_interval_s)
        self._last_shown = float("-inf")
        self._shown_x = None

    @property
    def n(self):
        return self._x

    @property
    def total(self):
        return self._total

    def set_description(self, desc, refresh=True):
        self._desc = desc or ""
        if refresh:
            self._show(force=True)

    def update(self, n=1):
        self._x += n
        self._show()

    def refresh(self):
        self._show(force=True)

    def close(self):
        if not self._closed:
            self._closed = True
            self._show(force=True)

    def __iter__(self):
        if self._iterable is None:
            raise ValueError("No iterable provided")
        for item in self._iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def line(self) -> str:
        """The progress as one line of text."""
        desc = f"{self._desc}: " if self._desc else ""
        if self._total:
            share = min(1.0, self._x / self._total)
            filled = int(share * WIDTH)
            return (f"{desc}{share * 100:3.0f}%|{'█' * filled}{' ' * (WIDTH - filled)}| "
                    f"{self._x}/{self._total}")
        return f"{desc}{self._x}it"

    def _show(self, force=False):
        now = time.monotonic()
        if not force and now - self._last_shown < self._interval:
            return
        if self._shown_x == self._x and not force:
            return
        self._last_shown, self._shown_x = now, self._x
        try:
            print(self.line(), file=sys.stderr, flush=True)
        except (OSError, ValueError):
            pass   # (a closed stream must not fail the task)


def safe_print(*args, **kwargs):
    """Ray's: print without garbling bars (lines here never are)."""
    print(*args, **kwargs)


__all__ = ["tqdm", "safe_print"]
