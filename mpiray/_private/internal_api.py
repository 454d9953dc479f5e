"""ray._private.internal_api: free() and memory_summary(), as Ray's programs call them."""

from __future__ import annotations

from mpiray.api import free  # noqa: F401 - the objects' memory goes now


def memory_summary(stats_only: bool = False, **_ignored) -> str:
    """Each node's object store, as text: capacity, bytes used and pinned, objects held,
    and what was spilled to disk."""
    from mpiray.api import _runtime
    from mpiray.core import cluster_info

    _runtime()
    lines = ["--- mpiray object store memory summary ---"]
    for index, s in enumerate(cluster_info.ask("store_stats")):
        lines.append(
            f"node {index}: {s['used'] / 2**20:.1f} MiB used of {s['capacity'] / 2**20:.1f} MiB "
            f"({s['pinned'] / 2**20:.1f} MiB pinned), {s['num_objects']} objects; "
            f"spilled: {s['num_spilled']} objects, {s['spilled_bytes'] / 2**20:.1f} MiB")
    return "\n".join(lines)
