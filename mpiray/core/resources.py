"""A node's resources: totals, what is free, and which GPU ids are handed out."""

from __future__ import annotations

EPS = 1e-9


_OWN_ARGUMENT = {"CPU": "num_cpus", "GPU": "num_gpus", "memory": "memory"}


def normalize(num_cpus=None, num_gpus=None, resources=None, default_cpus=1.0, memory=None) -> dict:
    """One resource dict from Ray's ways of asking; rejects bad amounts clearly. memory:
    bytes (Ray's `memory` resource: each node has what its RAM leaves beside the store)."""
    req = {}
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


UNIT_RESOURCES = ("GPU",)   # devices: a fraction shares one, more than one must be whole


def _check_amount(key, amount, option=None):
    what = option or f"resource {key!r}"
    if not isinstance(amount, (int, float)) or isinstance(amount, bool):
        raise TypeError(f"{what} must be a number, got {amount!r}")
    if amount < 0:
        raise ValueError(f"{what} must be a non-negative number, got {amount!r}")
    if isinstance(amount, float) and amount and int(amount * 10000) == 0:   # Ray's resource unit
        raise ValueError(f"{what}: the precision of the fractional quantity of resource {key} "
                         f"cannot go beyond 0.0001, got {amount!r}")
    if key in UNIT_RESOURCES and amount > 1 and float(amount) != int(amount):
        raise ValueError(f"{what}: {key} amounts above 1 must be whole numbers, got {amount!r}")


def _within(req: dict, have: dict) -> bool:
    # (a loop, not all(<genexpr>): this runs for every task dispatched)
    for k, v in req.items():
        if have.get(k, 0.0) + EPS < v:
            return False
    return True


class GpuSlots:
    """Devices and how much of each is free (1.0: the whole device). A whole-GPU request
    takes free whole devices; a fraction takes room on one device, the fullest that still
    has it, so fractions pack as Ray's do (four 0.5 tasks on two GPUs: two per device)."""

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
    def __init__(self, totals: dict, gpu_ids: list):
        self.totals = {k: float(v) for k, v in totals.items() if v}
        self.available = dict(self.totals)
        self.gpus = GpuSlots({g: 1.0 for g in gpu_ids})
        # GPUs reserved by placement group bundles (core/placement.py): the bundle's
        # "GPU_group_<i>_<pg>" -> its devices (a bundle of half a GPU: half a device)
        self.group_gpus = {}

    def feasible(self, req: dict) -> bool:
        return _within(req, self.totals)

    def fits(self, req: dict) -> bool:
        if not _within(req, self.available):
            return False
        gpus = req.get("GPU")   # (a GPU request needs room on devices, not just in the sum;
        if gpus is not None and self.gpus.free and not self.gpus.can_take(gpus):   # a view
            return False                                                      # has none)
        if self.group_gpus:
            for k, v in req.items():
                if k.startswith("GPU_group_") and not any(
                        pool.can_take(v) for pool in self._group_pools(k)):
                    return False
        return True

    def acquire(self, req: dict) -> list:
        """Takes req; returns the GPU ids handed out with it."""
        for k, v in req.items():
            if v:   # (a marker of 0 takes nothing, and must not show up as a resource)
                left = self.available.get(k, 0.0) - v
                # fractions (0.1 twenty times) must add up exactly: no -4e-16 CPUs
                self.available[k] = left if v == 1.0 else round(left, 9)
        if self.group_gpus:
            for k, v in req.items():
                if k.startswith("GPU_group_"):
                    for pool in self._group_pools(k):
                        if pool.can_take(v):
                            return pool.take(v)
                    return []
        gpus = req.get("GPU", 0.0)
        return self.gpus.take(gpus) if gpus else []

    def release(self, req: dict, gpu_ids=()) -> None:
        av = self.available
        for k, v in req.items():
            if k in av:  # (a removed placement group's names are gone: not brought back)
                av[k] = av[k] + v if v == 1.0 else round(av[k] + v, 9)
        if not gpu_ids:
            return
        for k, v in req.items():
            if k.startswith("GPU_group_"):
                for pool in self._group_pools(k):
                    if gpu_ids[0] in pool.free:
                        pool.give(gpu_ids, v)
                        break
                return
        self.gpus.give(gpu_ids, req.get("GPU", 0.0))

    def _group_pools(self, key):
        """The pools a request for key may use: one bundle's, or for the wildcard
        "GPU_group_<pg>", every bundle of that group on this node."""
        if key in self.group_gpus:
            return [self.group_gpus[key]]
        suffix = key[len("GPU_group"):]
        return [pool for k, pool in self.group_gpus.items() if k.endswith(suffix)]

    # ---------------------------------------------------------- placement group bundles

    def add(self, extra: dict, gpu_key=None, gpu_ids=()) -> None:
        """A reserved bundle's resources join the node (gpu_ids: the devices it holds)."""
        for k, v in extra.items():
            self.totals[k] = self.totals.get(k, 0.0) + v
            self.available[k] = self.available.get(k, 0.0) + v
        if gpu_key is not None:
            cap = min(extra.get(gpu_key, 1.0), 1.0)   # (a bundle of half a GPU: half a device)
            self.group_gpus[gpu_key] = GpuSlots({g: cap for g in gpu_ids})

    def remove(self, extra: dict, gpu_key=None) -> list:
        """A bundle's resources leave the node; returns the device ids it held."""
        for k, v in extra.items():
            left = self.totals.get(k, 0.0) - v
            if left > EPS:
                self.totals[k] = left
                self.available[k] = self.available.get(k, 0.0) - v
            else:
                self.totals.pop(k, None)
                self.available.pop(k, None)
        pool = self.group_gpus.pop(gpu_key, None)
        return list(pool.free) if pool is not None else []

    def overcommitted_cpus(self) -> float:
        """CPUs held beyond the total: tasks dispatched ahead (Scheduler._dispatch_ahead)."""
        return max(0.0, -self.available.get("CPU", 0.0))

    def snapshot_available(self) -> dict:
        return {k: max(0.0, round(v, 6)) for k, v in self.available.items()}
