"""Ray's collective types: the backends' names and the reduce operations."""

from enum import Enum


class Backend:
    """A backend's name, as Ray checks it: "gloo", "torch_gloo" and "nccl" are accepted
    (every one moves tensors through the object store here: util/collective/group.py)."""

    NCCL = "nccl"
    MPI = "mpi"
    GLOO = "gloo"
    TORCH_GLOO = "torch_gloo"
    UNRECOGNIZED = "unrecognized"

    def __new__(cls, name):
        backend = getattr(Backend, str(name).upper(), Backend.UNRECOGNIZED)
        if backend == Backend.UNRECOGNIZED:
            raise ValueError(f"Unrecognized backend: '{name}'. Only NCCL is supported")
        if backend == Backend.MPI:
            raise RuntimeError("Ray does not support MPI backend.")
        return backend


class ReduceOp(Enum):
    SUM = 0
    PRODUCT = 1
    MIN = 2
    MAX = 3


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def cupy_available() -> bool:
    try:
        import cupy  # noqa: F401
    except ImportError:
        return False
    return True
