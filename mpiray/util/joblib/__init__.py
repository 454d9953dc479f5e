"""ray.util.joblib: joblib's "ray" backend (scikit-learn's n_jobs over mpiray).

    register_ray()
    with joblib.parallel_backend("ray"):
        joblib.Parallel(n_jobs=4)(joblib.delayed(f)(x) for x in xs)

Its workers are the actors of mpiray.util.multiprocessing.Pool (ray_remote_args sizes
each of them); n_jobs=-1 is every CPU of the cluster.
"""


def register_ray():
    """joblib.parallel_backend("ray") runs joblib's batches on this runtime."""
    try:
        from joblib.parallel import register_parallel_backend
    except ImportError:
        raise ImportError("the ray backend is a backend of joblib: pip install joblib") from None
    from mpiray.util.joblib.ray_backend import RayBackend

    register_parallel_backend("ray", RayBackend)


__all__ = ["register_ray"]
