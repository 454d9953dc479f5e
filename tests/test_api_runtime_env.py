"""runtime_env (job, task and actor level) and max_calls, in real worker processes."""

import os
import time

import pytest


def environ(keys):
    return {k: os.environ.get(k) for k in keys}


def test_job_and_task_env_vars_and_what_a_task_leaves_behind(fresh):
    ray = fresh
    ray.init(num_cpus=2, runtime_env={"env_vars": {"JOB_VAR": "job", "SHARED": "job"}})
    read = ray.remote(environ)
    keys = ["JOB_VAR", "SHARED", "TASK_VAR"]
    assert ray.get(read.remote(keys)) == {"JOB_VAR": "job", "SHARED": "job", "TASK_VAR": None}
    task_env = {"env_vars": {"TASK_VAR": "t", "SHARED": "task"}}
    assert ray.get(read.options(runtime_env=task_env).remote(keys)) == \
        {"JOB_VAR": "job", "SHARED": "task", "TASK_VAR": "t"}
    # the next tasks, on the same workers, see the job's environment again
    assert ray.get([read.remote(keys) for _ in range(4)]) == \
        [{"JOB_VAR": "job", "SHARED": "job", "TASK_VAR": None}] * 4
    assert "JOB_VAR" not in os.environ   # the driver itself is not changed (as in Ray)


def test_working_dir_and_py_modules_are_where_the_code_runs_and_imports(ray, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "data.txt").write_text("hello")
    (work / "helper_in_wd.py").write_text("VALUE = 'from working_dir'\n")
    pkg = tmp_path / "mods" / "pkg_in_py_modules"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("NAME = 'pkg'\n")

    @ray.remote(runtime_env={"working_dir": str(work), "py_modules": [str(pkg)]})
    def inside():
        import helper_in_wd
        import pkg_in_py_modules
        with open("data.txt") as f:
            return os.getcwd(), f.read(), helper_in_wd.VALUE, pkg_in_py_modules.NAME

    assert ray.get(inside.remote()) == (str(work), "hello", "from working_dir", "pkg")

    @ray.remote
    def cwd():
        return os.getcwd()

    assert str(work) not in ray.get([cwd.remote() for _ in range(4)])


def test_children_and_actors_inherit_and_override(ray):
    read = ray.remote(environ)

    @ray.remote(runtime_env={"env_vars": {"PARENT": "p", "LEVEL": "parent"}})
    def parent():
        child_env = {"env_vars": {"LEVEL": "child"}}
        return (ray.get(read.remote(["PARENT", "LEVEL"])),
                ray.get(read.options(runtime_env=child_env).remote(["PARENT", "LEVEL"])))

    assert ray.get(parent.remote()) == ({"PARENT": "p", "LEVEL": "parent"},
                                        {"PARENT": "p", "LEVEL": "child"})

    @ray.remote(runtime_env={"env_vars": {"ACTOR_VAR": "a"}})
    class Holder:
        def read(self):
            return os.environ.get("ACTOR_VAR"), ray.get(read.remote(["ACTOR_VAR"]))

    assert ray.get(Holder.remote().read.remote()) == ("a", {"ACTOR_VAR": "a"})


def test_runtime_env_keyword_object(ray):
    from mpiray.runtime_env import RuntimeEnv

    read = ray.remote(environ)
    env = RuntimeEnv(env_vars={"FROM_OBJECT": "yes"})
    assert ray.get(read.options(runtime_env=env).remote(["FROM_OBJECT"])) == {"FROM_OBJECT": "yes"}


@pytest.mark.parametrize("env, error, words", [
    ({"conda": "myenv"}, ValueError, "conda not supported"),
    ({"env_vars": {"A": 1}}, TypeError, "dict of str to str"),
    ({"working_dir": "/no/such/dir"}, ValueError, "not an existing directory"),
    ({"working_dir": "s3://bucket/code.zip"}, ValueError, "remote URIs"),
    ({"py_modules": ["/no/such/module"]}, ValueError, "does not exist"),
    ("env_vars=A", TypeError, "must be a dict"),
])
def test_bad_runtime_env_is_refused_naming_what_is_wrong(ray, env, error, words):
    read = ray.remote(environ)
    with pytest.raises(error, match=words):
        read.options(runtime_env=env).remote([])


def test_pip_requirements_must_already_be_installed(ray):
    from mpiray.exceptions import RuntimeEnvSetupError

    read = ray.remote(environ)
    ok = {"pip": ["numpy>=1.0", "cloudpickle"], "env_vars": {"X": "1"}}
    assert ray.get(read.options(runtime_env=ok).remote(["X"])) == {"X": "1"}
    with pytest.raises(RuntimeEnvSetupError, match="surely-not-a-real-package"):
        read.options(runtime_env={"pip": ["numpy", "surely-not-a-real-package==1.0"]}).remote([])
    # a version the installed one does not satisfy is refused too, naming both
    with pytest.raises(RuntimeEnvSetupError, match=r"numpy<1\.0 \(installed: "):
        read.options(runtime_env={"pip": ["numpy<1.0"]}).remote([])
    with pytest.raises(RuntimeEnvSetupError, match="numpy>=99"):
        read.options(runtime_env={"pip": {"packages": ["numpy>=99"]}}).remote([])


def test_max_calls_replaces_the_worker_after_that_many_tasks(ray):
    @ray.remote(max_calls=2)
    def pid():
        return os.getpid()

    pids = [ray.get(pid.remote()) for _ in range(6)]
    # each worker runs at most two of them, then exits; fresh workers take over
    assert max(pids.count(p) for p in set(pids)) <= 2
    assert len(set(pids)) >= 3
    with pytest.raises(ValueError, match="max_calls"):
        pid.options(max_calls=-1)


def test_same_module_name_in_two_tasks_py_modules_each_gets_its_own(fresh, tmp_path):
    # Two tasks with different working_dirs, each holding its own `settings.py`: on Ray
    # each runs in a worker of its own runtime_env; here they share the worker (1 CPU),
    # and the second must not get the first one's module from sys.modules.
    ray = fresh
    ray.init(num_cpus=1)
    dirs = []
    for name in ("a", "b"):
        d = tmp_path / name
        d.mkdir()
        (d / "settings_rv2.py").write_text(f"WHO = {name!r}\n")
        dirs.append(str(d))

    @ray.remote
    def who():
        import settings_rv2
        return settings_rv2.WHO, os.getpid()

    (wa, pa) = ray.get(who.options(runtime_env={"working_dir": dirs[0]}).remote())
    (wb, pb) = ray.get(who.options(runtime_env={"working_dir": dirs[1]}).remote())
    assert pa == pb   # (same worker: what this test is about)
    assert (wa, wb) == ("a", "b")

    @ray.remote
    def plain():
        try:
            import settings_rv2  # noqa: F401
            return "imported"
        except ImportError:
            return "ImportError"

    # a task without that runtime_env cannot import what only the env made importable
    assert ray.get(plain.remote()) == "ImportError"


def test_a_cancel_that_lands_while_the_env_is_put_back_leaves_nothing_behind(fresh, tmp_path):
    ray = fresh
    ray.init(num_cpus=1)
    many = {f"RV2_VAR_{i}": "x" * 10 for i in range(30_000)}   # slow to put back
    flag = tmp_path / "returned"

    @ray.remote(runtime_env={"env_vars": many})
    def quick(path):
        open(path, "w").close()
        return 1

    @ray.remote
    def leaked():
        return sum(1 for k in os.environ if k.startswith("RV2_VAR_")), os.getpid()

    _, pid = ray.get(leaked.remote())
    ref = quick.remote(str(flag))
    while not flag.exists():
        time.sleep(0.001)
    time.sleep(0.05)          # the task has returned: its env vars are being put back
    ray.cancel(ref)
    try:
        ray.get(ref)
    except Exception:
        pass
    n, pid2 = ray.get(leaked.remote())
    assert pid2 == pid
    assert n == 0


def test_a_restarted_actor_keeps_its_runtime_env(ray, tmp_path):
    @ray.remote(max_restarts=1, runtime_env={"env_vars": {"RV2_ACTOR": "yes"},
                                             "working_dir": str(tmp_path)})
    class A:
        def where(self):
            return os.environ.get("RV2_ACTOR"), os.getcwd(), os.getpid()

        def die(self):
            os._exit(1)

    a = A.remote()
    env1, cwd1, pid1 = ray.get(a.where.remote())
    a.die.remote()
    deadline = time.monotonic() + 20
    while True:
        try:
            env2, cwd2, pid2 = ray.get(a.where.remote())
            if pid2 != pid1:
                break
        except Exception:
            pass
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert (env1, cwd1) == (env2, cwd2) == ("yes", str(tmp_path))


def test_max_calls_under_a_burst_on_one_cpu_loses_and_repeats_nothing(fresh, tmp_path):
    ray = fresh
    ray.init(num_cpus=1)

    @ray.remote(max_calls=1)
    def one(i, path):
        with open(path, "a") as f:
            f.write(f"{i}\n")
        return i, os.getpid()

    log = str(tmp_path / "runs")
    out = ray.get([one.remote(i, log) for i in range(40)])
    assert [i for i, _ in out] == list(range(40))
    assert len({p for _, p in out}) == 40
    with open(log) as f:
        assert sorted(int(x) for x in f.read().split()) == list(range(40))


def test_max_calls_with_nested_blocked_parents(fresh):
    ray = fresh
    ray.init(num_cpus=2)

    @ray.remote(max_calls=1)
    def leaf(i):
        return i

    @ray.remote(max_calls=1)
    def parent(i):
        return sum(ray.get([leaf.remote(i) for _ in range(3)]))

    assert ray.get([parent.remote(i) for i in range(10)]) == [3 * i for i in range(10)]


def test_forgetting_an_envs_modules_spares_a_site_packages_inside_its_directory(monkeypatch):
    import sys
    import types

    from mpiray.core.runtime_env import _forget_modules

    mine, lib = types.ModuleType("rv2_mine"), types.ModuleType("rv2_lib")
    mine.__file__ = "/x/proj/rv2_mine.py"
    lib.__file__ = "/x/proj/.venv/site-packages/rv2_lib/__init__.py"
    monkeypatch.setitem(sys.modules, "rv2_mine", mine)
    monkeypatch.setitem(sys.modules, "rv2_lib", lib)
    _forget_modules({"rv2_mine", "rv2_lib"}, ["/x/proj"], ["/usr/lib/python3", "/x/proj/.venv/site-packages"])
    assert "rv2_mine" not in sys.modules and sys.modules["rv2_lib"] is lib


def test_env_vars_expand_references_and_a_setup_hook_runs_once_per_process(fresh, monkeypatch):
    """Ray's runtime_env: `${NAME}` in env_vars is NAME's value ("" if unset); a
    worker_process_setup_hook runs in each worker before its work; excludes is accepted."""
    import os

    from mpiray.runtime_env import RuntimeEnv

    ray = fresh
    monkeypatch.setenv("BASE_FOR_EXPANSION", "base")
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    ray.init(num_cpus=1, runtime_env={"worker_process_setup_hook": "os.getcwd",
                                      "excludes": ["*.log"]})

    def mark():
        os.environ["SETUP_HOOK_RAN"] = os.environ.get("SETUP_HOOK_RAN", "") + "x"

    @ray.remote
    def read():
        return (os.environ.get("X"), os.environ.get("Y"), os.environ.get("SETUP_HOOK_RAN"))

    env = {"env_vars": {"X": "${BASE_FOR_EXPANSION}:/extra", "Y": "${NOT_SET_ANYWHERE}z"},
           "worker_process_setup_hook": mark}
    assert ray.get(read.options(runtime_env=env).remote(), timeout=30) == ("base:/extra", "z", "x")
    assert ray.get(read.options(runtime_env=env).remote(), timeout=30)[2] == "x"   # once
    with pytest.raises(TypeError):
        RuntimeEnv(env_vars={"A": 1})
    with pytest.raises(ValueError):
        RuntimeEnv(pip=["x"], conda="env")


def test_a_working_dir_task_imports_its_own_module_after_the_worker_imported_another(fresh, tmp_path):
    """The job's working_dir has helper.py, so does a task's: each gets its own, whatever
    the worker imported before (Ray gives each env workers of its own)."""
    ray = fresh
    for name in ("job", "task"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "helper.py").write_text(f"WHO = {name!r}\n")
    ray.init(num_cpus=1, runtime_env={"working_dir": str(tmp_path / "job")})

    @ray.remote
    def who():
        import helper

        return helper.WHO

    own = who.options(runtime_env={"working_dir": str(tmp_path / "task")})
    assert [ray.get(f.remote(), timeout=30) for f in (who, own, who, own)] == \
        ["job", "task", "job", "task"]


def test_runtime_env_config_is_checked_and_to_dict_is_plain(ray):
    import dataclasses

    from mpiray.runtime_env import RuntimeEnv, RuntimeEnvConfig

    @ray.remote
    def f():
        return True

    for bad in ({"setup_timeout_seconds": 10.0}, {"setup_timeout_seconds": 0},
                {"setup_timeout_seconds": "10"}):
        with pytest.raises(ValueError, match="setup_timeout_seconds"):
            f.options(runtime_env={"config": bad})
        with pytest.raises(ValueError, match="setup_timeout_seconds"):
            RuntimeEnv(config=bad)
    env = RuntimeEnv(env_vars={"FOO": "BAR"}, config=RuntimeEnvConfig(setup_timeout_seconds=1))

    @dataclasses.dataclass
    class Holder:
        runtime_env: dict

    assert dataclasses.asdict(Holder(env.to_dict()))["runtime_env"]["config"][
        "setup_timeout_seconds"] == 1
    assert ray.get(f.options(runtime_env=env).remote(), timeout=30)


def test_runtime_env_object_has_rays_methods():
    from mpiray.runtime_env import RuntimeEnv

    env = RuntimeEnv(env_vars={"A": "a"}, pip=["requests"], my_plugin={"x": 1})
    as_dict = env.to_dict()
    as_dict["env_vars"]["B"] = "b"   # a copy: the RuntimeEnv keeps its own
    assert env["env_vars"] == {"A": "a"}
    again = RuntimeEnv.deserialize(env.serialize())
    assert again == env and isinstance(again, RuntimeEnv)
    assert env.env_vars() == {"A": "a"} and env.has_pip() and env.pip_config() == {"packages": ["requests"]}
    assert (env.working_dir(), env.py_modules(), env.has_conda(), env.has_working_dir()) == ("", [], False, False)
    assert env.plugins() == [("my_plugin", '{"x": 1}')]
    assert RuntimeEnv().to_dict() == {} and RuntimeEnv().env_vars() == {}


def _log_setup():
    import logging

    logging.basicConfig(level=logging.INFO)


def test_logging_a_setup_hook_configures_gets_the_workers_prefix(fresh, capfd):
    """A worker_process_setup_hook that calls logging.basicConfig (Ray's docs do): a
    task's and an actor's log lines reach the driver with their "(name pid=N)" prefix."""
    import logging

    ray = fresh
    ray.init(num_cpus=1, runtime_env={"worker_process_setup_hook": _log_setup})

    @ray.remote
    def logs_a_line():
        logging.info("from the task")
        return os.getpid()

    @ray.remote
    class Logs:
        def line(self):
            logging.warning("from the actor")
            return os.getpid()

    pid = ray.get(logs_a_line.remote(), timeout=30)
    actor_pid = ray.get(Logs.remote().line.remote(), timeout=30)
    deadline = time.monotonic() + 10
    err = ""
    while time.monotonic() < deadline and "from the actor" not in err:
        time.sleep(0.1)
        err += capfd.readouterr().err
    assert f"(logs_a_line pid={pid}) INFO:root:from the task" in err, err
    assert f"(Logs pid={actor_pid}) WARNING:root:from the actor" in err, err
