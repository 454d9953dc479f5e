"""Names of a session's shared-memory segments: per user and per session, so two jobs
on one node (of one user or of two) never collide."""

import os


def prefix(session: str) -> str:
    return f"/mpiray-{os.getuid()}-{session}"


def store_name(session: str) -> str:
    return prefix(session) + "-store"


def task_queue_name(session: str) -> str:
    return prefix(session) + "-tasks"


def inbox_name(session: str) -> str:
    return prefix(session) + "-inbox"


def actor_queue_name(session: str, actor_id: bytes) -> str:
    return prefix(session) + "-a" + actor_id.hex()


def remove_session_segments(session: str) -> int:
    """Unlinks every segment of a session (after a crash); returns how many."""
    head = prefix(session)[1:]
    removed = 0
    try:
        entries = os.listdir("/dev/shm")
    except OSError:
        return 0
    for entry in entries:
        if entry.startswith(head):
            try:
                os.unlink(os.path.join("/dev/shm", entry))
                removed += 1
            except OSError:
                pass
    return removed
