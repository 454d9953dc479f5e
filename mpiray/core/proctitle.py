"""A worker's process title, as Ray's: `ps` and `top` show `ray::<task>` (or
`ray::<Class>.<method>`) while it runs, and `ray::IDLE` between tasks.

The title is written over the process's argv area (what /proc/<pid>/cmdline reads; the
interpreter keeps its own copy of argv), the short name by prctl(PR_SET_NAME). Both only
when the title changes: a worker running one function over and over writes it once. The
short name is set from the main thread only: prctl names the calling thread, and the
threads of a threaded actor keep names of their own (what tools that count a process's
threads by name see), as Ray's pools do.
"""

import ctypes
import os
import threading

_PR_SET_NAME = 15
_area = None      # (address, size) of the argv area; False: cannot be retitled
_title = None
_libc = None


def _find_area():
    """arg_start and arg_end, fields 48 and 49 of /proc/self/stat (counted after the
    command name's closing parenthesis, which may itself hold spaces)."""
    global _libc
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    start, end = int(fields[45]), int(fields[46])
    if not start or end <= start:
        return False
    _libc = ctypes.CDLL(None, use_errno=True)
    return start, end - start


def set_title(what: str) -> None:
    """`ray::<what>`; a process where it cannot be set keeps its command line."""
    global _area, _title
    if what == _title:
        return
    _title = what
    if _area is None:
        try:
            _area = _find_area()
        except (OSError, ValueError, IndexError):
            _area = False
    if not _area:
        return
    address, size = _area
    text = f"ray::{what}".encode(errors="replace")[: size - 1]
    ctypes.memmove(address, text + bytes(size - len(text)), size)
    if threading.current_thread() is threading.main_thread():
        _libc.prctl(_PR_SET_NAME, ctypes.c_char_p(text[:15]), 0, 0, 0)
