"""ray.job_config.JobConfig: a job's settings given to init(job_config=...).

mpiray reads the two that mean something here, runtime_env and ray_namespace (init's
own runtime_env= and namespace= win over them); metadata is kept for the caller.
"""

from __future__ import annotations


class JobConfig:
    def __init__(self, jvm_options=None, code_search_path=None, runtime_env=None,
                 metadata=None, ray_namespace=None, default_actor_lifetime="non_detached",
                 _client_job=False, _py_driver_sys_path=None, py_logging_config=None):
        if default_actor_lifetime not in ("detached", "non_detached"):
            raise ValueError("default_actor_lifetime must be 'detached' or 'non_detached', "
                             f"got {default_actor_lifetime!r}")
        self.jvm_options = list(jvm_options or [])
        self.code_search_path = list(code_search_path or [])
        self.runtime_env = dict(runtime_env) if runtime_env else None
        self.metadata = dict(metadata or {})
        self.ray_namespace = ray_namespace
        self.default_actor_lifetime = default_actor_lifetime
        self.py_logging_config = py_logging_config   # (a ray.LoggingConfig: kept)

    def set_metadata(self, key: str, value: str) -> None:
        self.metadata[key] = value

    def set_runtime_env(self, runtime_env, validate=False) -> None:
        self.runtime_env = dict(runtime_env) if runtime_env else None

    def set_ray_namespace(self, ray_namespace: str) -> None:
        self.ray_namespace = ray_namespace

    def set_default_actor_lifetime(self, default_actor_lifetime: str) -> None:
        self.__init__(self.jvm_options, self.code_search_path, self.runtime_env, self.metadata,
                      self.ray_namespace, default_actor_lifetime,
                      py_logging_config=self.py_logging_config)

    def set_py_logging_config(self, logging_config=None) -> None:
        self.py_logging_config = logging_config

    @classmethod
    def from_json(cls, job_config_json: dict) -> "JobConfig":
        """The JobConfig to_json() described."""
        return cls(runtime_env=job_config_json.get("runtime_env"),
                   metadata=job_config_json.get("metadata"),
                   ray_namespace=job_config_json.get("ray_namespace"),
                   default_actor_lifetime=job_config_json.get("default_actor_lifetime", "non_detached"))

    def to_json(self) -> dict:
        return {"runtime_env": self.runtime_env, "metadata": self.metadata,
                "ray_namespace": self.ray_namespace,
                "default_actor_lifetime": self.default_actor_lifetime}
