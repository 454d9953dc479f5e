"""`ray.runtime_env.RuntimeEnv`: a runtime_env built with keywords (what each field means
on mpiray: core/runtime_env.py and docs/api.md)."""

from __future__ import annotations


class RuntimeEnv(dict):
    """A dict of runtime_env fields; checked where it is used (init, @remote, .options)."""

    def __init__(self, *, env_vars=None, working_dir=None, py_modules=None, pip=None,
                 uv=None, config=None, **other_fields):
        given = dict(env_vars=env_vars, working_dir=working_dir, py_modules=py_modules,
                     pip=pip, uv=uv, config=config, **other_fields)
        super().__init__({k: v for k, v in given.items() if v is not None})

    def to_dict(self) -> dict:
        return dict(self)
