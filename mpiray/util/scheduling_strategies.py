"""Ray's scheduling strategies (see _options._with_strategy)."""

from __future__ import annotations


NO_SUCH_NODE = 1 << 20   # the index an id that names no node stands for (indexes take 2 bytes)


class NodeAffinitySchedulingStrategy:
    """Run on the node with this id (``ray.nodes()[i]["NodeID"]``, or
    ``get_runtime_context().get_node_id()``). soft=False: only that node (the work
    fails when it does not exist or cannot hold it); soft=True: that node when it exists
    and can hold the work, else any node (Ray's)."""

    def __init__(self, node_id: str, soft: bool = False, _spill_on_unavailable=False,
                 _fail_on_unavailable=False, **_ray_only):
        if not isinstance(node_id, str) and hasattr(node_id, "hex"):
            node_id = node_id.hex()   # (a NodeID, as Ray takes it)
        if not isinstance(node_id, str):
            raise TypeError(f"NodeAffinitySchedulingStrategy needs a node id string, got "
                            f"{type(node_id).__name__}")
        # An id that names no node (not one of ours) is taken, as Ray takes it: the work
        # then fails as unschedulable (soft=False) or runs anywhere (soft=True).
        from mpiray._ids import node_index_of

        self.index = node_index_of(node_id)
        wrong = []
        if not soft and _spill_on_unavailable:
            wrong.append("_spill_on_unavailable cannot be set when soft is False (set soft=True "
                         "to use it).")
        if soft and _fail_on_unavailable:
            wrong.append("_fail_on_unavailable cannot be set when soft is True (set soft=False "
                         "to use it).")
        if wrong:
            raise ValueError("Invalid NodeAffinitySchedulingStrategy attribute. " + " ".join(wrong))
        self.node_id, self.soft = node_id, bool(soft)
        self._spill_on_unavailable = _spill_on_unavailable
        self._fail_on_unavailable = _fail_on_unavailable

    def resource(self) -> str:
        from mpiray.core.node import node_resource

        return node_resource(self.index if self.index is not None else NO_SUCH_NODE)

    def __repr__(self):
        return f"NodeAffinitySchedulingStrategy(node_id={self.node_id!r}, soft={self.soft})"


class PlacementGroupSchedulingStrategy:
    """Run in bundle placement_group_bundle_index of placement_group (-1: any of its
    bundles; placement_group None: in no group, as the default strategy, even inside a
    task whose group captures its children). placement_group_capture_child_tasks=True:
    the tasks and actors it starts without a strategy of their own go in the group too."""

    def __init__(self, placement_group, placement_group_bundle_index: int = -1,
                 placement_group_capture_child_tasks=None):
        from mpiray.util.placement_group import PlacementGroup, check_placement_group_index

        if placement_group is None:   # (as Ray's: outside any group, a captured one too)
            if placement_group_bundle_index != -1:
                raise ValueError("If placement group is not set, the value of bundle index "
                                 "must be -1.")
        elif not isinstance(placement_group, PlacementGroup):
            raise ValueError(f"PlacementGroupSchedulingStrategy needs a PlacementGroup, got "
                             f"{placement_group!r}")
        else:
            check_placement_group_index(placement_group, placement_group_bundle_index)
        self.placement_group = placement_group
        self.placement_group_bundle_index = placement_group_bundle_index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks

    def __repr__(self):
        return (f"PlacementGroupSchedulingStrategy({self.placement_group!r}, "
                f"bundle {self.placement_group_bundle_index})")


class _LabelOperator:
    def __init__(self, *values):
        name = type(self).__name__   # (Ray's words)
        if not values:
            raise ValueError(f"The variadic parameter of the {name} operator must be a non-empty "
                             f'tuple: e.g. {name}("value1", "value2").')
        for i, value in enumerate(values):
            if not isinstance(value, str):
                raise ValueError(f"Type of value in position {i} for the {name} operator must be "
                                 f"str (e.g. {name}(\"value\")), got {value!r}")
        self.values = tuple(values)

    def __eq__(self, other):
        return type(self) is type(other) and self.values == other.values

    def __hash__(self):
        return hash((type(self), self.values))

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(map(repr, self.values))})"


class In(_LabelOperator):
    """The node's label is one of these values."""


class NotIn(_LabelOperator):
    """The node lacks the label, or has another value."""


class _KeyOperator:
    values = ()

    def __eq__(self, other):
        return type(self) is type(other)

    def __hash__(self):
        return hash(type(self))

    def __repr__(self):
        return f"{type(self).__name__}()"


class Exists(_KeyOperator):
    """The node has the label, whatever its value."""


class DoesNotExist(_KeyOperator):
    """The node lacks the label."""


class NodeLabelSchedulingStrategy:
    """Run on a node whose labels (init(labels=), nodes()[i]["Labels"]) match every
    expression of hard, preferring those that match soft too: e.g.
    NodeLabelSchedulingStrategy(hard={"zone": In("a", "b")}, soft={"disk": Exists()}).
    Work no node matches waits (core/labels.py)."""

    def __init__(self, hard, *, soft=None):
        from mpiray.core.labels import Selector, expressions_to_terms

        if not hard and not soft:
            raise ValueError("The `hard` and `soft` parameter of NodeLabelSchedulingStrategy "
                             "cannot both be empty.")
        self.hard, self.soft = hard, soft
        self.selector = Selector(expressions_to_terms(hard, "NodeLabelSchedulingStrategy hard"),
                                 expressions_to_terms(soft, "NodeLabelSchedulingStrategy soft"))

    def __repr__(self):
        return f"NodeLabelSchedulingStrategy(hard={self.hard!r}, soft={self.soft!r})"


__all__ = ["NodeAffinitySchedulingStrategy", "PlacementGroupSchedulingStrategy",
           "NodeLabelSchedulingStrategy", "In", "NotIn", "Exists", "DoesNotExist"]
