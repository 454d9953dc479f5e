"""A node's resources: totals, what is free, and which GPU ids are handed out."""

from __future__ import annotations

EPS = 1e-9


_OWN_ARGUMENT = {"CPU": "num_cpus", "GPU": "num_gpus", "memory": "memory"}


def normalize(num_cpus=None, num_gpus=None, resources=None, default_cpus=1.0, memory=None) -> dict:
    """One resource dict from Ray's ways of asking; rejects bad amounts clearly. memory:
    bytes (Ray's `memory` resource: each node has what its RAM leaves beside the store)."""
    req = {}
    cpus = default_cpus if num_cpus is None else num_cpus
    for key, amount in (("CPU", cpus), ("GPU", num_gpus or 0), ("memory", memory or 0)):
        _check_amount(key, amount)
        if amount:
            req[key] = float(amount)
    for key, amount in (resources or {}).items():
        if key == "object_store_memory":
            raise ValueError("object_store_memory is not a resource a task or actor asks for")
        if key in _OWN_ARGUMENT:
            raise ValueError(f"use {_OWN_ARGUMENT[key]}=, not resources={{{key!r}: ...}}")
        _check_amount(key, amount)
        if amount:
            req[key] = float(amount)
    return req


def _check_amount(key, amount):
    if not isinstance(amount, (int, float)) or isinstance(amount, bool) or amount < 0:
        raise ValueError(f"resource {key!r} must be a non-negative number, got {amount!r}")
    if amount > 1 and float(amount) != int(amount):
        raise ValueError(f"resource {key!r}: amounts above 1 must be whole numbers, got {amount!r}")


def _within(req: dict, have: dict) -> bool:
    # (a loop, not all(<genexpr>): this runs for every task dispatched)
    for k, v in req.items():
        if have.get(k, 0.0) + EPS < v:
            return False
    return True


class NodeResources:
    def __init__(self, totals: dict, gpu_ids: list):
        self.totals = {k: float(v) for k, v in totals.items() if v}
        self.available = dict(self.totals)
        self.free_gpus = list(gpu_ids)
        # GPUs reserved by placement group bundles (core/placement.py): the bundle's
        # "GPU_group_<i>_<pg>" -> its free device ids; a device id -> its bundle's key
        self.group_gpus = {}
        self.gpu_home = {}

    def feasible(self, req: dict) -> bool:
        return _within(req, self.totals)

    def fits(self, req: dict) -> bool:
        return _within(req, self.available)

    def acquire(self, req: dict) -> list:
        """Takes req; returns the GPU ids handed out with it (whole GPUs first)."""
        for k, v in req.items():
            if v:   # (a marker of 0 takes nothing, and must not show up as a resource)
                left = self.available.get(k, 0.0) - v
                # fractions (0.1 twenty times) must add up exactly: no -4e-16 CPUs
                self.available[k] = left if v == 1.0 else round(left, 9)
        if self.group_gpus:
            for k, v in req.items():
                if k.startswith("GPU_group_"):
                    return self._take_group_gpus(k, v)
        gpus = req.get("GPU", 0.0)
        if 0 < gpus < 1:  # a fraction shares one device with other fractional users
            return self.free_gpus[:1] if self.free_gpus else self._shared_gpu()
        taken, self.free_gpus = self.free_gpus[: int(gpus)], self.free_gpus[int(gpus):]
        return taken

    def _shared_gpu(self):
        return [0] if self.totals.get("GPU") else []

    def release(self, req: dict, gpu_ids=()) -> None:
        av = self.available
        for k, v in req.items():
            if k in av:  # (a removed placement group's names are gone: not brought back)
                av[k] = av[k] + v if v == 1.0 else round(av[k] + v, 9)
        if req.get("GPU", 0.0) >= 1:
            self.free_gpus.extend(g for g in gpu_ids if g not in self.free_gpus)
        elif self.gpu_home and gpu_ids:
            for g in gpu_ids:
                pool = self.group_gpus.get(self.gpu_home.get(g))
                if pool is not None and g not in pool and any(
                        k.startswith("GPU_group_") and v >= 1 for k, v in req.items()):
                    pool.append(g)

    # ---------------------------------------------------------- placement group bundles
    def add(self, extra: dict, gpu_key=None, gpu_ids=()) -> None:
        """A reserved bundle's resources join the node (gpu_ids: the devices it holds)."""
        for k, v in extra.items():
            self.totals[k] = self.totals.get(k, 0.0) + v
            self.available[k] = self.available.get(k, 0.0) + v
        if gpu_key is not None:
            self.group_gpus[gpu_key] = list(gpu_ids)
            self.gpu_home.update((g, gpu_key) for g in gpu_ids)

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
        self.group_gpus.pop(gpu_key, None)
        ids = [g for g, home in self.gpu_home.items() if home == gpu_key]
        for g in ids:
            del self.gpu_home[g]
        return ids

    def _take_group_gpus(self, key, amount) -> list:
        """Device ids for `amount` of a bundle's GPUs (key: one bundle's, or the
        wildcard "GPU_group_<pg>" meaning any bundle of that group on this node)."""
        pools = [self.group_gpus[key]] if key in self.group_gpus else [
            pool for k, pool in self.group_gpus.items() if k.endswith(key[len("GPU_group"):])]
        if 0 < amount < 1:   # a fraction shares a device
            return next(([pool[0]] for pool in pools if pool), [])
        taken = []
        for pool in pools:
            while pool and len(taken) < int(amount):
                taken.append(pool.pop(0))
        return taken

    def overcommitted_cpus(self) -> float:
        """CPUs held beyond the total: tasks dispatched ahead (Scheduler._dispatch_ahead)."""
        return max(0.0, -self.available.get("CPU", 0.0))

    def snapshot_available(self) -> dict:
        return {k: max(0.0, round(v, 6)) for k, v in self.available.items()}
