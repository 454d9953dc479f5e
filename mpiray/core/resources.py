"""A node's resources: totals, what is free, and which GPU ids are handed out."""

from __future__ import annotations

EPS = 1e-9


def normalize(num_cpus=None, num_gpus=None, resources=None, default_cpus=1.0) -> dict:
    """One resource dict from Ray's three ways of asking; rejects bad amounts clearly."""
    req = {}
    cpus = default_cpus if num_cpus is None else num_cpus
    for key, amount in (("CPU", cpus), ("GPU", num_gpus or 0)):
        _check_amount(key, amount)
        if amount:
            req[key] = float(amount)
    for key, amount in (resources or {}).items():
        if key in ("CPU", "GPU"):
            raise ValueError(f"use num_cpus/num_gpus, not resources={{{key!r}: ...}}")
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

    def feasible(self, req: dict) -> bool:
        return _within(req, self.totals)

    def fits(self, req: dict) -> bool:
        return _within(req, self.available)

    def acquire(self, req: dict) -> list:
        """Takes req; returns the GPU ids handed out with it (whole GPUs first)."""
        for k, v in req.items():
            self.available[k] = self.available.get(k, 0.0) - v
        gpus = req.get("GPU", 0.0)
        if 0 < gpus < 1:  # a fraction shares one device with other fractional users
            return self.free_gpus[:1] if self.free_gpus else self._shared_gpu()
        taken, self.free_gpus = self.free_gpus[: int(gpus)], self.free_gpus[int(gpus):]
        return taken

    def _shared_gpu(self):
        return [0] if self.totals.get("GPU") else []

    def release(self, req: dict, gpu_ids=()) -> None:
        for k, v in req.items():
            self.available[k] = self.available.get(k, 0.0) + v
        if req.get("GPU", 0.0) >= 1:
            self.free_gpus.extend(g for g in gpu_ids if g not in self.free_gpus)

    def overcommitted_cpus(self) -> float:
        """CPUs held beyond the total: tasks dispatched ahead (Scheduler._dispatch_ahead)."""
        return max(0.0, -self.available.get("CPU", 0.0))

    def snapshot_available(self) -> dict:
        return {k: max(0.0, round(v, 6)) for k, v in self.available.items()}
