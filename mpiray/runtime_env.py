"""`ray.runtime_env.RuntimeEnv`: a runtime_env built with keywords (what each field means
on mpiray: core/runtime_env.py and docs/api.md)."""

from __future__ import annotations

import copy
import json

# The fields Ray's RuntimeEnv knows; any other is a plugin's (plugins()).
KNOWN_FIELDS = ("py_modules", "py_executable", "java_jars", "working_dir", "conda", "pip", "uv",
                "container", "image_uri", "excludes", "env_vars", "_ray_release",
                "_ray_commit", "_inject_current_ray", "config", "worker_process_setup_hook",
                "nsight", "mpi", "rocprof_sys")


class RuntimeEnv(dict):
    """A dict of runtime_env fields. Its fields' types are checked when it is made, as
    Ray's are; what they name (directories, packages) where it is used."""

    def __init__(self, *, env_vars=None, working_dir=None, py_modules=None, pip=None,
                 uv=None, conda=None, config=None, **other_fields):
        if env_vars is not None and not (isinstance(env_vars, dict) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items())):
            raise TypeError(f"env_vars must be a dict of str to str, got {env_vars!r}")
        if config is not None and not isinstance(config, RuntimeEnvConfig):
            config = RuntimeEnvConfig.parse(config)   # (checked, as Ray's)
        if sum(x is not None for x in (pip, uv, conda)) > 1:
            raise ValueError("The 'pip', 'uv' and 'conda' fields of a runtime_env cannot be "
                             "used together; give one of them")
        given = dict(env_vars=env_vars, working_dir=working_dir, py_modules=py_modules,
                     pip=pip, uv=uv, conda=conda, config=config, **other_fields)
        super().__init__({k: v for k, v in given.items() if v is not None})

    def to_dict(self) -> dict:
        """Plain dicts all the way down (dataclasses.asdict, json), a copy: changing it
        leaves this one as it is."""
        out = copy.deepcopy(dict(self))
        if isinstance(out.get("config"), RuntimeEnvConfig):
            out["config"] = out["config"].to_dict()
        return out

    def serialize(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def deserialize(cls, serialized_runtime_env: str) -> "RuntimeEnv":
        return cls(**json.loads(serialized_runtime_env))

    # Ray's accessors, each with its default when the field is not set
    def env_vars(self) -> dict:
        return dict(self.get("env_vars", {}))

    def working_dir(self) -> str:
        return self.get("working_dir", "")

    def has_working_dir(self) -> bool:
        return bool(self.get("working_dir"))

    def working_dir_uri(self):
        return self.get("working_dir")

    def py_modules(self) -> list:
        return list(self.get("py_modules", []))

    def py_modules_uris(self) -> list:
        return self.py_modules()

    def py_executable(self):
        return self.get("py_executable")

    def java_jars(self) -> list:
        return list(self.get("java_jars", []))

    def has_pip(self) -> bool:
        return self.get("pip") is not None

    def pip_config(self) -> dict:
        return self._packages("pip")

    def has_uv(self) -> bool:
        return self.get("uv") is not None

    def uv_config(self) -> dict:
        return self._packages("uv")

    def _packages(self, field) -> dict:
        """A pip / uv field as a config dict (a bare list is its packages)."""
        value = self.get(field)
        if value is None:
            return {}
        return {"packages": list(value)} if isinstance(value, (list, tuple)) else dict(value)

    def has_conda(self) -> bool:
        return self.get("conda") is not None

    def conda_env_name(self):
        conda = self.get("conda")
        return conda if isinstance(conda, str) else None

    def conda_config(self):
        conda = self.get("conda")
        return json.dumps(conda, sort_keys=True) if isinstance(conda, dict) else None

    def image_uri(self):
        return self.get("image_uri")

    def get_extension(self, key):
        if key not in KNOWN_FIELDS and "_" not in key:   # (as Ray's: a plugin's field)
            raise ValueError(f"Extension key {key!r} must contain '_'")
        return self.get(key)

    def plugins(self) -> list:
        """(field, its value as json) for each field that is not one of Ray's own."""
        return [(k, json.dumps(v)) for k, v in self.items() if k not in KNOWN_FIELDS]

    def get_uris(self) -> list:
        uris = [self["working_dir"]] if isinstance(self.get("working_dir"), str) and \
            "://" in self["working_dir"] else []
        return uris + [m for m in self.py_modules() if isinstance(m, str) and "://" in m]


class RuntimeEnvConfig(dict):
    """runtime_env's "config" field, as Ray's (how environments are set up: mpiray sets
    them up in the worker that needs one, so these are checked and kept, not acted on)."""

    def __init__(self, setup_timeout_seconds=600, eager_install=True, log_files=None):
        if not isinstance(setup_timeout_seconds, int) or isinstance(setup_timeout_seconds, bool) \
                or not (setup_timeout_seconds > 0 or setup_timeout_seconds == -1):
            raise ValueError("setup_timeout_seconds must be a positive integer or -1, got "
                             f"{setup_timeout_seconds!r}")
        if not isinstance(eager_install, bool):
            raise TypeError(f"eager_install must be a bool, got {type(eager_install).__name__}")
        log_files = [] if log_files is None else log_files
        if not isinstance(log_files, list) or not all(isinstance(f, str) for f in log_files):
            raise TypeError(f"log_files must be a list of strings, got {log_files!r}")
        super().__init__(setup_timeout_seconds=setup_timeout_seconds,
                         eager_install=eager_install, log_files=log_files)

    @classmethod
    def parse(cls, config) -> "RuntimeEnvConfig":
        """A runtime_env's "config" given as a dict (or one already): checked."""
        if isinstance(config, cls):
            return config
        if not isinstance(config, dict):
            raise TypeError(f"runtime_env's config must be a dict, got {type(config).__name__}")
        return cls(**config)

    def to_dict(self) -> dict:
        return dict(self)
