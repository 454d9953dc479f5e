"""runtime_env (job, task and actor level) and max_calls, in real worker processes."""

import os

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
