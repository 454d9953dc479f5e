"""ray.util.state.common: the kinds of rows the state API lists (Ray's state classes).
Each is a dict whose fields read as attributes too, and prints under its kind's name."""

from __future__ import annotations


class StateSchema(dict):
    """One listed item: a dict, whose fields also read as attributes (Ray's states are
    dataclasses: `actor.state`)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def asdict(self) -> dict:
        return dict(self)

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in self.items())
        return f"{type(self).__name__}({fields})"


class ActorState(StateSchema):
    pass


class TaskState(StateSchema):
    pass


class ObjectState(StateSchema):
    pass


class WorkerState(StateSchema):
    pass


class NodeState(StateSchema):
    pass


class PlacementGroupState(StateSchema):
    pass


class JobState(StateSchema):
    pass


__all__ = ["ActorState", "JobState", "NodeState", "ObjectState", "PlacementGroupState",
           "StateSchema", "TaskState", "WorkerState"]
