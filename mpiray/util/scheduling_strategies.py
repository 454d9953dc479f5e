"""Ray's scheduling strategies that mean something here (see _options._with_strategy)."""

from __future__ import annotations


class NodeAffinitySchedulingStrategy:
    """Run on the node with this id (``ray.nodes()[i]["NodeID"]``, or
    ``get_runtime_context().get_node_id()``). soft=True: a preference this scheduler
    does not act on; soft=False: only that node."""

    def __init__(self, node_id: str, soft: bool = False, **_ray_only):
        if not isinstance(node_id, str) or len(node_id) < 4:
            raise ValueError(f"NodeAffinitySchedulingStrategy needs a node id string, got {node_id!r}")
        try:
            self.index = int(node_id[:4], 16)
        except ValueError:
            raise ValueError(f"{node_id!r} is not an mpiray node id") from None
        self.node_id, self.soft = node_id, bool(soft)

    def resource(self) -> str:
        from mpiray.core.node import node_resource

        return node_resource(self.index)

    def __repr__(self):
        return f"NodeAffinitySchedulingStrategy(node_id={self.node_id!r}, soft={self.soft})"


__all__ = ["NodeAffinitySchedulingStrategy"]
