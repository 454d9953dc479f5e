"""`ray.runtime_env.RuntimeEnv`: a runtime_env built with keywords (what each field means
on mpiray: core/runtime_env.py and docs/api.md)."""

from __future__ import annotations


class RuntimeEnv(dict):
    """A dict of runtime_env fields. Its fields' types are checked when it is made, as
    Ray's are; what they name (directories, packages) where it is used."""

    def __init__(self, *, env_vars=None, working_dir=None, py_modules=None, pip=None,
                 uv=None, conda=None, config=None, **other_fields):
        if env_vars is not None and not (isinstance(env_vars, dict) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items())):
            raise TypeError(f"env_vars must be a dict of str to str, got {env_vars!r}")
        if sum(x is not None for x in (pip, uv, conda)) > 1:
            raise ValueError("The 'pip', 'uv' and 'conda' fields of a runtime_env cannot be "
                             "used together; give one of them")
        given = dict(env_vars=env_vars, working_dir=working_dir, py_modules=py_modules,
                     pip=pip, uv=uv, conda=conda, config=config, **other_fields)
        super().__init__({k: v for k, v in given.items() if v is not None})

    def to_dict(self) -> dict:
        return dict(self)
