"""The states of a task record in a node's scheduler (core/scheduler.py and its cross-node
half, core/scheduler_remote.py).

    WAITING (arguments not sealed yet) ──► READY (queued for resources) ──► DISPATCHED
                                              │ no room here, room on another node
                                              └──► FORWARDED (it runs there)
    READY with resources no node has ──► INFEASIBLE (until some are added)
"""

WAITING, READY, INFEASIBLE, DISPATCHED, FORWARDED = (
    "WAITING", "READY", "INFEASIBLE", "DISPATCHED", "FORWARDED")
