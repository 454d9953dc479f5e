"""The states of a task record in a node's scheduler (core/scheduler.py and its cross-node
half, core/scheduler_remote.py).

    WAITING (arguments not sealed yet) ──► READY (queued for resources) ──► DISPATCHED
                                              │ no room here, room on another node
                                              └──► FORWARDED (it runs there)
    READY with resources no node has ──► INFEASIBLE (until some are added)
    DISPATCHED, failed with an error retry_exceptions allows ──► RETRY_WAIT (Ray's pause
        before the next attempt) ──► READY
"""

WAITING, READY, INFEASIBLE, DISPATCHED, FORWARDED, RETRY_WAIT = (
    "WAITING", "READY", "INFEASIBLE", "DISPATCHED", "FORWARDED", "RETRY_WAIT")
