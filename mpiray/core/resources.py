"""A node's resources: totals, what is free, and which device ids (GPUs and the other
accelerators, core/accelerators.py) are handed out."""

from __future__ import annotations

from mpiray.core import accelerators
from mpiray.core.accelerators import NONE, kind_of_group_key

EPS = 1e-9


_OWN_ARGUMENT = {"CPU": "num_cpus", "GPU": "num_gpus", "memory": "memory"}


# What accelerator_type="X" asks of the accelerator_type:X resource (Ray's amount):
# a node whose GPUs are of type X has 1 of it (_config.detect_accelerator_type).
ACCELERATOR_TYPE_SHARE = 0.001


def normalize(num_cpus=None, num_gpus=None, resources=None, default_cpus=1.0, memory=None,
              accelerator_type=None) -> dict:
    """One resource dict from Ray's ways of asking; rejects bad amounts clearly. memory:
    bytes (Ray's `memory` resource: each node has what its RAM leaves beside the store)."""
    req = {}
    if accelerator_type:
        req[f"accelerator_type:{accelerator_type}"] = ACCELERATOR_TYPE_SHARE
    cpus = default_cpus if num_cpus is None else num_cpus
    for key, option, amount in (("CPU", "num_cpus", cpus), ("GPU", "num_gpus", num_gpus or 0),
                                ("memory", "memory", memory or 0)):
        _check_amount(key, amount, option)
        if key == "memory":
            amount = int(amount)   # (as Ray: whole bytes, a fraction rounded down)
        if amount:
            req[key] = float(amount)
    if resources is not None and not isinstance(resources, dict):
        raise TypeError(f"resources must be a dict of resource name to amount, got {resources!r}")
    for key, amount in (resources or {}).items():
        if key == "object_store_memory":
            raise ValueError("object_store_memory is not a resource a task or actor asks for")
        if key in _OWN_ARGUMENT:
            raise ValueError(f"use {_OWN_ARGUMENT[key]}=, not resources={{{key!r}: ...}}")
        _check_amount(key, amount)
        if amount:
            req[key] = float(amount)
    return req




def _check_amount(key, amount, option=None):
    what = option or f"resource {key!r}"
    if not isinstance(amount, (int, float)) or isinstance(amount, bool):
        if option:   # (Ray's words for its options)
            raise TypeError(f"The type of keyword '{option}' must be (<class 'float'>, <class 'int'>, "
                            f"<class 'NoneType'>), but received type {type(amount)}")
        raise TypeError(f"{what} must be a number, got {amount!r}")
    if amount < 0:
        if option:
            raise ValueError(f"The keyword '{option}' only accepts None, 0 or a positive number, "
                             f"got {amount!r}")
        raise ValueError(f"{what} must be a non-negative number, got {amount!r}")
    if isinstance(amount, float) and amount and int(amount * 10000) == 0:   # Ray's resource unit
        raise ValueError(f"The precision of the fractional quantity of resource {option or key} "
                         f"cannot go beyond 0.0001, got {amount!r}")
    if accelerators.is_accelerator(key) and (why := accelerators.request_error(key, amount)):
        raise ValueError(why)
    if accelerators.is_accelerator(key) and amount > 1 and float(amount) != int(amount):
        raise RefusedAtSubmit(f"{what}: {key} amounts above 1 must be whole numbers (Resource "
                              f"quantities >1 must be whole numbers), got {amount!r}")


class RefusedAtSubmit(ValueError):
    """An amount Ray takes in @remote / .options() but refuses when the work is submitted
    (its core worker's check): a module declaring such a function still imports."""


def _within(req: dict, have: dict) -> bool:
    # (a loop, not all(<genexpr>): this runs for every task dispatched)
    for k, v in req.items():
        if have.get(k, 0.0) + EPS < v:
            return False
    return True


class DeviceSlots:
    """Devices of one kind and how much of each is free (1.0: the whole device). A request
    of whole devices takes free whole devices; a fraction takes room on one device, the
    fullest that still has it, so fractions pack as Ray's do (four 0.5 tasks on two GPUs:
    two per device)."""

    def __init__(self, capacity: dict):
        self.capacity = dict(capacity)   # device id -> its share here (a bundle: maybe 0.5)
        self.free = dict(capacity)       # device id -> free fraction

    def can_take(self, amount: float) -> bool:
        if amount >= 1:
            return sum(1 for f in self.free.values() if f >= 1.0 - EPS) >= int(amount)
        return amount <= 0 or any(f + EPS >= amount for f in self.free.values())

    def take(self, amount: float) -> list:
        if amount >= 1:
            ids = [g for g, f in self.free.items() if f >= 1.0 - EPS][: int(amount)]
            for g in ids:
                self.free[g] = 0.0
            return ids
        if amount <= 0:
            return []
        room = [(f, g) for g, f in self.free.items() if f + EPS >= amount]
        if not room:
            return []
        f, g = min(room, key=lambda fg: (fg[0], str(fg[1])))
        self.free[g] = round(f - amount, 9)
        return [g]

    def give(self, ids, amount: float) -> None:
        for g in ids:
            if g in self.free:
                cap = self.capacity[g]
                self.free[g] = cap if amount >= 1 else min(cap, round(self.free[g] + amount, 9))


class NodeResources:
    def __init__(self, totals: dict, gpu_ids: list, view=False):
        """view: another node's resources as this one sees them (sums only: that node
        hands out its own devices)."""
        self.totals = {k: float(v) for k, v in totals.items() if v}
        self.available = dict(self.totals)
        # accelerator kind -> its devices on this node
        self.devices = {} if view else {
            name: DeviceSlots({i: 1.0 for i in ids})
            for name, ids in accelerators.node_ids(self.totals, gpu_ids).items()}
        # devices reserved by placement group bundles (core/placement.py): the bundle's
        # "GPU_group_<i>_<pg>" -> its devices (a bundle of half a GPU: half a device)
        self.group_devices = {}

    def feasible(self, req: dict) -> bool:
        return _within(req, self.totals)

    def fits(self, req: dict) -> bool:
        if not _within(req, self.available):
            return False
        # (a device request needs room on devices, not just in the sum)
        for name, pool in self.devices.items():
            amount = req.get(name)
            if amount is not None and not pool.can_take(amount):
                return False
        if self.group_devices:
            for k, v in req.items():
                if kind_of_group_key(k) and not any(
                        pool.can_take(v) for pool in self._group_pools(k)):
                    return False
        return True

    def acquire(self, req: dict) -> dict:
        """Takes req; returns the device ids handed out with it, by kind."""
        for k, v in req.items():
            if v:   # (a marker of 0 takes nothing, and must not show up as a resource)
                left = self.available.get(k, 0.0) - v
                # fractions (0.1 twenty times) must add up exactly: no -4e-16 CPUs
                self.available[k] = left if v == 1.0 else round(left, 9)
        if not self.devices and not self.group_devices:
            return NONE
        ids = {}
        in_group = set()
        if self.group_devices:
            for k, v in req.items():
                name = kind_of_group_key(k)
                if name is not None and name not in in_group:
                    in_group.add(name)
                    for pool in self._group_pools(k):
                        if pool.can_take(v):
                            ids[name] = pool.take(v)
                            break
        for name, pool in self.devices.items():
            amount = req.get(name)
            if amount and name not in in_group:
                ids[name] = pool.take(amount)
        return ids or NONE

    def release(self, req: dict, ids=NONE) -> None:
        av = self.available
        for k, v in req.items():
            if k in av:  # (a removed placement group's names are gone: not brought back)
                av[k] = av[k] + v if v == 1.0 else round(av[k] + v, 9)
        if not ids:
            return
        for name, got in ids.items():
            if not got:
                continue
            pool = self._pool_holding(req, name, got[0])
            if pool is not None:
                pool.give(got, self._amount_of(req, name))

    def _pool_holding(self, req, name, device):
        keys = [k for k in req if kind_of_group_key(k) == name]
        if not keys:
            return self.devices.get(name)
        for k in keys:
            for pool in self._group_pools(k):
                if device in pool.free:
                    return pool
        return None   # (its bundle is gone: the devices left with it)

    @staticmethod
    def _amount_of(req, name):
        for k, v in req.items():
            if k == name or kind_of_group_key(k) == name:
                return v
        return 0.0

    def _group_pools(self, key):
        """The pools a request for key may use: one bundle's, or for the wildcard
        "GPU_group_<pg>", every bundle of that group on this node."""
        if key in self.group_devices:
            return [self.group_devices[key]]
        name, _, suffix = key.partition("_group")
        return [pool for k, pool in self.group_devices.items()
                if k.startswith(name + "_group_") and k.endswith(suffix)]

    # ---------------------------------------------------------- placement group bundles

    def add(self, extra: dict, keys=NONE, ids=NONE) -> None:
        """A reserved bundle's resources join the node; keys: the bundle's resource key of
        each accelerator kind it holds, ids: those devices."""
        for k, v in extra.items():
            self.totals[k] = self.totals.get(k, 0.0) + v
            self.available[k] = self.available.get(k, 0.0) + v
        for name, got in ids.items():
            key = keys[name]
            cap = min(extra.get(key, 1.0), 1.0)   # (a bundle of half a GPU: half a device)
            self.group_devices[key] = DeviceSlots({i: cap for i in got})

    def remove(self, extra: dict, keys=NONE) -> dict:
        """A bundle's resources leave the node; returns the device ids it held, by kind."""
        for k, v in extra.items():
            left = self.totals.get(k, 0.0) - v
            if left > EPS:
                self.totals[k] = left
                self.available[k] = self.available.get(k, 0.0) - v
            else:
                self.totals.pop(k, None)
                self.available.pop(k, None)
        out = {}
        for name, key in keys.items():
            pool = self.group_devices.pop(key, None)
            if pool is not None:
                out[name] = list(pool.free)
        return out

    def overcommitted_cpus(self) -> float:
        """CPUs held beyond the total: tasks dispatched ahead (Scheduler._dispatch_ahead)."""
        return max(0.0, -self.available.get("CPU", 0.0))

    def snapshot_available(self) -> dict:
        return {k: max(0.0, round(v, 6)) for k, v in self.available.items()}
