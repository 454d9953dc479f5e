"""The driver's log, as Ray's: init() gives the "mpiray" logger a stderr handler in Ray's
format at logging_level (INFO unless told), so its lines (the runtime started, an
unhandled error) read as Ray's do; init(configure_logging=False) leaves logging alone.

    init() ──configure()──► logging.getLogger("mpiray") ──StreamHandler──► stderr
    mpiray.core.* loggers ──(children: propagate to it)──┘   └─(propagates on)──► root
                                                            (pytest's caplog, the user's)

Ray's logger stops propagating, so that a root handler the user set up (basicConfig)
does not print each line a second time; here the line propagates (caplog sees it, as
it sees Ray's under Ray's test fixture), and the mpiray handler stays silent instead
while the root logger has a handler printing to the console.
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s\t%(levelname)s %(filename)s:%(lineno)s -- %(message)s"   # Ray's
log = logging.getLogger("mpiray")


def configure(extra: dict) -> None:
    """extra: init()'s keywords configure_logging, logging_level, logging_format."""
    if not extra.get("configure_logging", True):
        return
    level = extra.get("logging_level", logging.INFO)
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
        if not isinstance(level, int):
            raise ValueError(f"logging_level must be a logging level, got {extra['logging_level']!r}")
    handler = next((h for h in log.handlers if getattr(h, "mpiray_driver", False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler.mpiray_driver = True
        handler.addFilter(_unless_root_prints)
        log.addHandler(handler)
    handler.setFormatter(logging.Formatter(extra.get("logging_format") or FORMAT))
    log.setLevel(level)


def _unless_root_prints(record) -> bool:
    return not any(isinstance(h, logging.StreamHandler) and
                   getattr(h, "stream", None) in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)
                   for h in logging.getLogger().handlers)


def started(num_nodes: int) -> None:
    if num_nodes > 1:
        log.info("Started an MPI cluster of %d nodes; this rank (0) is the driver.", num_nodes)
    else:
        log.info("Started a local Ray instance.")
