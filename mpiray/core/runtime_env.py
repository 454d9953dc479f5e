"""Ray's runtime_env on mpiray: the environment a task or actor runs its code in.

    init(runtime_env=job) ──► Config ──► each node's zygote: set once, every worker forked
                                         from it inherits it (env vars, cwd, sys.path)
    @remote / .options(runtime_env=env) ──► TaskSpec.runtime_env
        task:  set around the task (TaskWorker.execute), undone after it
        actor: set for the actor's process before its __init__ (ActorWorker)
    a task's or actor's children inherit its runtime_env, their own fields on top

mpiray runs every task on the machine's shared file system and in the driver's Python
environment, so what Ray ships or installs is used in place here:
- env_vars: {name: value}, strings only (Ray's rule); `${NAME}` in a value is NAME's value
  in the environment it is set in ("" if unset), so `"${PATH}:/extra"` appends.
- working_dir: a local directory: the code runs in it (cwd) and imports from it.
  Ray uploads a copy; here every process sees the directory itself.
- py_modules: local package directories, .py files or imported modules: importable.
- pip / uv: checked, not installed: every requirement must already be installed in
  this environment, else RuntimeEnvSetupError names the missing ones.
- worker_process_setup_hook: a function (or "module.function") run once in each process
  that runs work in this env, before that work (the job's: once in each node's zygote,
  which every worker is forked from).
- config, eager_install, excludes: accepted (they tune how Ray sets environments up and
  what it uploads; nothing is uploaded here).
Anything else (conda, container, image_uri, remote URIs, ...) is a ValueError naming it.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import types

SUPPORTED = {"env_vars", "working_dir", "py_modules", "pip", "uv", "config", "eager_install",
             "excludes", "worker_process_setup_hook"}
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_hooks_run = set()   # the setup hooks this process has run


def validate(env, where="runtime_env") -> dict | None:
    """The canonical form of a user's runtime_env (absolute paths, only what acts), or
    None when it asks for nothing. Raises ValueError / TypeError / RuntimeEnvSetupError."""
    if env is None:
        return None
    if hasattr(env, "to_dict") and not isinstance(env, dict):  # ray.runtime_env.RuntimeEnv
        env = env.to_dict()
    if not isinstance(env, dict):
        raise TypeError(f"{where} must be a dict, got {type(env).__name__}")
    unknown = set(env) - SUPPORTED
    if unknown:
        raise ValueError(
            f"{where}: {', '.join(sorted(unknown))} not supported by mpiray (it runs every task "
            f"in the driver's Python environment); supported: {', '.join(sorted(SUPPORTED))}")
    if env.get("config") is not None:   # (checked as Ray checks it; not acted on)
        from mpiray.runtime_env import RuntimeEnvConfig

        RuntimeEnvConfig.parse(env["config"])
    out = {}
    env_vars = env.get("env_vars")
    if env_vars:
        if not isinstance(env_vars, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items()):
            raise TypeError(f"{where}['env_vars'] must be a dict of str to str, got {env_vars!r}")
        out["env_vars"] = dict(env_vars)
    if env.get("working_dir") is not None:
        out["working_dir"] = _local_dir(env["working_dir"], f"{where}['working_dir']")
    if env.get("py_modules"):
        modules = env["py_modules"]
        if not isinstance(modules, (list, tuple)):
            raise TypeError(f"{where}['py_modules'] must be a list, got {type(modules).__name__}")
        out["py_modules"] = [_import_root(m, f"{where}['py_modules']") for m in modules]
    for tool in ("pip", "uv"):
        if env.get(tool):
            _check_installed(env[tool], f"{where}[{tool!r}]")
    excludes = env.get("excludes")
    if excludes is not None and not (isinstance(excludes, (list, tuple)) and all(
            isinstance(e, str) for e in excludes)):
        raise TypeError(f"{where}['excludes'] must be a list of str, got {excludes!r}")
    hook = env.get("worker_process_setup_hook")
    if hook is not None:
        out["worker_process_setup_hook"] = _setup_hook(hook, f"{where}['worker_process_setup_hook']")
    return out or None


def _setup_hook(hook, where):
    """("name", "module.function") or ("pickled", bytes): it travels to every worker."""
    if isinstance(hook, str):
        module, _, name = hook.rpartition(".")
        if not module or not name:
            raise ValueError(f"{where}: {hook!r} is not a 'module.function' name")
        return ("name", hook)
    if not callable(hook):
        raise TypeError(f"{where} must be a callable or a 'module.function' name, got {hook!r}")
    import cloudpickle

    return ("pickled", cloudpickle.dumps(hook))


def _run_setup_hook(hook) -> None:
    key = hook[1] if hook[0] == "name" else hash(hook[1])
    if key in _hooks_run:
        return
    _hooks_run.add(key)
    if hook[0] == "name":
        import importlib

        module, _, name = hook[1].rpartition(".")
        fn = getattr(importlib.import_module(module), name)
    else:
        import cloudpickle

        fn = cloudpickle.loads(hook[1])
    fn()


def _expanded(env_vars: dict) -> dict:
    """Ray's ${NAME} references, to the values in this process's environment now."""
    return {k: _REFERENCE.sub(lambda m: os.environ.get(m.group(1), ""), v)
            for k, v in env_vars.items()}


def merge(parent: dict | None, child: dict | None) -> dict | None:
    """The child's fields over the parent's; env_vars are merged, the child's winning."""
    if not parent:
        return child
    if not child:
        return parent
    merged = dict(parent, **child)
    if "env_vars" in parent and "env_vars" in child:
        merged["env_vars"] = dict(parent["env_vars"], **child["env_vars"])
    return merged


def apply_process(env: dict | None) -> None:
    """Sets env for the rest of this process's life (a zygote, an actor)."""
    if env:
        os.environ.update(_expanded(env.get("env_vars", {})))
        for root in reversed(_import_roots(env)):
            if root not in sys.path:
                sys.path.insert(0, root)
        if "working_dir" in env:
            os.chdir(env["working_dir"])
        if "worker_process_setup_hook" in env:
            _run_setup_hook(env["worker_process_setup_hook"])


@contextlib.contextmanager
def applied(env: dict | None):
    """Sets env for one task and puts back what it changed afterwards."""
    if not env:
        yield
        return
    saved_env = {k: os.environ.get(k) for k in env.get("env_vars", {})}
    saved_path = list(sys.path)
    saved_cwd = os.getcwd()
    # what the env makes importable stays its own: modules imported from its directories
    # go with it, or the next task on this worker (another env's module of the same
    # name, or no env at all) would get them from sys.modules
    roots = _import_roots(env)
    added = [r for r in roots if r not in saved_path]
    _drop_shadowed(roots)
    saved_modules = set(sys.modules) if added else None
    try:
        try:
            apply_process(env)
        except OSError as exc:  # (its working_dir went away since it was checked, say)
            from mpiray.exceptions import RuntimeEnvSetupError

            raise RuntimeEnvSetupError(f"runtime_env could not be set up: {exc}") from exc
        yield
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        sys.path[:] = saved_path
        if os.getcwd() != saved_cwd:
            os.chdir(saved_cwd)
        if saved_modules is not None:
            _forget_modules(set(sys.modules) - saved_modules, added, saved_path)


def _drop_shadowed(roots) -> None:
    """Modules this worker imported earlier from elsewhere (the script's directory,
    another env's working_dir) under a name one of roots provides go from sys.modules, so
    this env imports its own (Ray gives each env workers of its own). Modules of the
    Python installation (stdlib, site-packages) stay."""
    installed = tuple(os.path.join(p, "") for p in {sys.prefix, sys.base_prefix, sys.exec_prefix})
    for root in roots:
        try:
            entries = os.listdir(root)
        except OSError:
            continue
        for entry in entries:
            name = entry[:-3] if entry.endswith(".py") else entry
            if not name.isidentifier() or (entry == name and not os.path.isdir(os.path.join(root, entry))):
                continue
            module = sys.modules.get(name)
            origin = getattr(module, "__file__", None) if module is not None else None
            if origin is None or origin.startswith(os.path.join(root, "")) or origin.startswith(installed):
                continue
            for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
                sys.modules.pop(loaded, None)


def _forget_modules(names, roots, base_path) -> None:
    """Drops from sys.modules those of names loaded from under one of roots (and not from
    a sys.path entry inside it, such as a virtual environment's site-packages)."""
    roots = [os.path.join(r, "") for r in roots]
    base = [os.path.join(os.path.abspath(p), "") for p in base_path if isinstance(p, str) and p]

    def from_roots(path):
        best = max((r for r in roots if path.startswith(r)), key=len, default=None)
        return best is not None and not any(
            len(b) > len(best) and path.startswith(b) for b in base)

    for name in names:
        module = sys.modules.get(name)
        origin = getattr(module, "__file__", None)
        paths = getattr(module, "__path__", None)   # (namespace packages have no file)
        if (origin and from_roots(origin)) or (not origin and paths and all(
                from_roots(str(p)) for p in paths)):
            sys.modules.pop(name, None)


def _import_roots(env: dict) -> list:
    roots = ([env["working_dir"]] if "working_dir" in env else []) + env.get("py_modules", [])
    return list(dict.fromkeys(roots))


def _local_dir(path, where) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{where} must be a path, got {type(path).__name__}")
    path = os.fspath(path)
    if "://" in path:
        raise ValueError(f"{where}: remote URIs ({path!r}) are not supported by mpiray; "
                         "give a directory on a file system every node sees")
    full = os.path.abspath(path)
    if not os.path.isdir(full):
        raise ValueError(f"{where}: {path!r} is not an existing directory")
    return full


def _import_root(module, where) -> str:
    """The sys.path entry that makes module importable: the directory holding it."""
    if isinstance(module, types.ModuleType):
        origin = getattr(module, "__file__", None)
        if origin is None:
            raise ValueError(f"{where}: module {module.__name__!r} has no file to import from")
        module = os.path.dirname(origin) if os.path.basename(origin) == "__init__.py" else origin
    if not isinstance(module, (str, os.PathLike)):
        raise TypeError(f"{where}: expected paths or modules, got {module!r}")
    path = os.fspath(module)
    if "://" in path:
        raise ValueError(f"{where}: remote URIs ({path!r}) are not supported by mpiray")
    full = os.path.abspath(path)
    if not os.path.exists(full):
        raise ValueError(f"{where}: {path!r} does not exist")
    return os.path.dirname(full.rstrip(os.sep))


def _check_installed(spec, where) -> None:
    from importlib import metadata

    from mpiray.exceptions import RuntimeEnvSetupError

    if isinstance(spec, dict):
        spec = spec.get("packages", [])
    if isinstance(spec, (str, os.PathLike)):
        path = os.fspath(spec)
        if not os.path.isfile(path):
            raise ValueError(f"{where}: {path!r} is neither a list of packages nor a requirements file")
        with open(path) as f:
            spec = [line for line in f if line.strip() and not line.lstrip().startswith(("#", "-"))]
    missing = []
    for requirement in spec:
        match = _REQUIREMENT_NAME.match(str(requirement))
        if match is None:
            raise ValueError(f"{where}: cannot read the requirement {requirement!r}")
        try:
            installed = metadata.version(match.group(1))
        except metadata.PackageNotFoundError:
            missing.append(f"{match.group(1)} (not installed)")
            continue
        wanted = _version_spec(str(requirement))
        if wanted is not None and not wanted.contains(installed, prereleases=True):
            missing.append(f"{str(requirement).strip()} (installed: {installed})")
    if missing:
        raise RuntimeEnvSetupError(
            f"{where}: {', '.join(missing)}. mpiray installs nothing: tasks run in the "
            f"driver's Python environment ({sys.prefix}); install what they need there first")


def _version_spec(requirement: str):
    """The version specifier of a requirement ("numpy>=1.2,<3"), or None if it has none
    (or no parser of requirements is at hand: then the name alone is checked)."""
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:
        try:
            from pip._vendor.packaging.requirements import InvalidRequirement, Requirement
        except ImportError:
            return None
    try:
        req = Requirement(requirement)
    except InvalidRequirement:
        return None
    return req.specifier if str(req.specifier) else None
