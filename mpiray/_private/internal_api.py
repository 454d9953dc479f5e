"""ray._private.internal_api: free(), memory_summary() and global_gc(), as Ray's programs
call them."""

from __future__ import annotations

from mpiray.api import free  # noqa: F401 - the objects' memory goes now


def memory_summary(stats_only: bool = False, **_ignored) -> str:
    """The object stores, as text: first Ray's aggregate lines (what tools and tests
    parse), then each node's store: bytes used and pinned, objects, what was spilled."""
    from mpiray.api import _runtime
    from mpiray.core import cluster_info

    _runtime()
    stats = cluster_info.ask("store_stats")
    total = {k: sum(s[k] for s in stats) for k in
             ("capacity", "used", "pinned", "num_objects", "num_spilled", "spilled_bytes",
              "spill_count", "spilled_total_bytes", "spill_s", "restored_total",
              "restored_total_bytes", "restore_s")}
    capacity = max(1, total["capacity"])
    lines = [
        "--- Aggregate object store stats across all nodes ---",
        f"Plasma memory usage {total['used'] // 2**20} MiB, {total['num_objects']} objects, "
        f"{round(100 * total['used'] / capacity, 2)}% full, "
        f"{round(100 * total['pinned'] / capacity, 2)}% needed",
    ]
    # (Ray's lines: totals since the start, each with its average throughput)
    if total["spill_count"]:
        lines.append(f"Spilled {total['spilled_total_bytes'] // 2**20} MiB, {total['spill_count']} objects, "
                     f"avg write throughput {_mib_per_s(total['spilled_total_bytes'], total['spill_s'])} MiB/s")
    if total["restored_total"]:
        lines.append(f"Restored {total['restored_total_bytes'] // 2**20} MiB, {total['restored_total']} objects, "
                     f"avg read throughput {_mib_per_s(total['restored_total_bytes'], total['restore_s'])} MiB/s")
    lines.append("")
    lines.append("--- Object stores by node ---")
    for index, s in enumerate(stats):
        lines.append(
            f"node {index}: {s['used'] / 2**20:.1f} MiB used of {s['capacity'] / 2**20:.1f} MiB "
            f"({s['pinned'] / 2**20:.1f} MiB pinned), {s['num_objects']} objects; "
            f"spilled: {s['num_spilled']} objects, {s['spilled_bytes'] / 2**20:.1f} MiB")
    return "\n".join(lines)


def _mib_per_s(nbytes: int, seconds: float) -> int:
    return int(nbytes / 2**20 / max(seconds, 1e-9))


def global_gc() -> None:
    """Every process of this node (workers, actors and this one) runs gc.collect() soon, as
    Ray's global GC does: objects held only by reference cycles are freed. Under MPI it
    reaches the caller's node."""
    import gc

    from mpiray.api import _runtime
    from mpiray.core import protocol as P

    rt = _runtime()
    rt.channel.send([(P.GLOBAL_GC,)])
    gc.collect()
