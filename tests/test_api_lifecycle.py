"""Start, stop and crash of the runtime: nothing left behind, output reaches the driver."""

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

from conftest import our_segments

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# Every driver these tests start carries this mark in its environment, which its zygote
# and workers inherit: so the checks below see only this test run's processes, not those
# of other mpiray jobs on the machine.
MARK = f"MPIRAY_TEST_MARK={os.getpid()}-{time.time_ns()}"


def _env():
    key, value = MARK.split("=")
    return dict(os.environ, **{key: value})


def _run_driver(code, timeout=60, **kwargs):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def _zygotes_alive():
    """Zygotes (and workers, which are forks of them) started by this test run."""
    alive = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()   # (a worker is titled ray::<task>, as Ray's)
                if b"mpiray.core.zygote" not in cmdline and not cmdline.startswith(b"ray::"):
                    continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                if MARK.encode() in f.read().split(b"\0"):
                    alive.append(int(pid))
        except OSError:
            continue
    return alive


def test_shutdown_leaves_no_segments_or_processes(fresh):
    ray = fresh
    before = our_segments()
    ray.init(num_cpus=2)

    @ray.remote
    class A:
        def pid(self):
            return os.getpid()

    @ray.remote
    def f():
        return os.getpid()

    pids = ray.get([f.remote() for _ in range(4)]) + [ray.get(A.remote().pid.remote())]
    ray.shutdown()
    assert our_segments() == before
    time.sleep(0.2)
    for pid in set(pids):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_init_twice_and_ignore_reinit(fresh):
    ray = fresh
    ray.init(num_cpus=1)
    with pytest.raises(RuntimeError):
        ray.init(num_cpus=1)
    ray.init(num_cpus=3, ignore_reinit_error=True)
    assert ray.cluster_resources()["CPU"] == 1
    with pytest.raises(RuntimeError, match="Unknown keyword argument.*not_a_keyword"):
        ray.shutdown() or ray.init(not_a_keyword=1)


def test_killed_driver_leaves_nothing_behind():
    before = our_segments()
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import mpiray as ray, time
        import numpy as np
        session = ray.init(num_cpus=2, object_store_memory=80 << 20)["session"]
        @ray.remote
        def f(): return 1
        ray.get(f.remote())
        held = [ray.put(np.ones(40 << 20, dtype=np.uint8)) for _ in range(2)]  # one spills
        print(session, flush=True)
        time.sleep(60)
    """)], cwd=ROOT, env=_env(), stdout=subprocess.PIPE, text=True)
    session = proc.stdout.readline().strip()
    spill_dir = os.path.join(tempfile.gettempdir(), f"mpiray-spill-{os.getuid()}-{session}")
    assert len(our_segments()) > len(before)
    assert os.listdir(spill_dir)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while (our_segments() != before or _zygotes_alive() or os.path.exists(spill_dir)) and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    assert our_segments() == before
    assert _zygotes_alive() == []
    assert not os.path.exists(spill_dir)   # its spilled objects' files went with it


@pytest.mark.parametrize("how", ["sigterm", "exception", "normal"])
def test_driver_exit_cleans_up(how):
    before = our_segments()
    ending = {
        "sigterm": "import os, signal; os.kill(os.getpid(), signal.SIGTERM); time.sleep(30)",
        "exception": "raise RuntimeError('driver failed')",
        "normal": "pass",
    }[how]
    result = _run_driver(f"""
        import time
        import mpiray as ray
        ray.init(num_cpus=2)
        @ray.remote
        def f(): return 1
        assert ray.get(f.remote()) == 1
        {ending}
    """)
    assert result.returncode == {"sigterm": 15, "exception": 1, "normal": 0}[how], result.stderr
    time.sleep(0.2)
    assert our_segments() == before
    assert _zygotes_alive() == []


def test_worker_prints_reach_driver_with_prefix():
    result = _run_driver("""
        import mpiray as ray
        ray.init(num_cpus=1)
        @ray.remote
        def hello(i):
            print(f"hello from task {i}")
            return i
        ray.get([hello.remote(i) for i in range(3)])
        @ray.remote
        class Greeter:
            def __init__(self, index):
                self.index = index
            def greet(self):
                print("hello from an actor")
            def __repr__(self):
                return f"Greeter(index={self.index})"
        ray.get(Greeter.remote(7).greet.remote())
        import time; time.sleep(0.3)
        ray.shutdown()
    """)
    assert result.returncode == 0, result.stderr
    lines = [l for l in result.stdout.splitlines() if "hello from task" in l]
    assert len(lines) == 3
    assert all(l.startswith("(hello pid=") for l in lines), lines   # as Ray: the task's name
    assert any(l.startswith("(Greeter(index=7) pid=") and l.endswith("hello from an actor")
               for l in result.stdout.splitlines()), result.stdout   # an actor's __repr__


def test_output_that_bypasses_python_is_prefixed_in_order():
    """os.write, a subprocess's output and a line left unfinished get their worker's
    prefix too (Ray's log monitor reads each worker's own file), in the order written."""
    result = _run_driver("""
        import os, subprocess
        import mpiray as ray
        ray.init(num_cpus=1)
        @ray.remote
        def shell():
            print("first", flush=True)
            os.write(1, b"second\\n")
            subprocess.run(["echo", "third"], check=True)
            print("fourth")
            subprocess.run("echo to-stderr >&2", shell=True, check=True)
            os.write(1, b"no newline")
            return os.getpid()
        @ray.remote
        class Runner:
            def run(self):
                subprocess.run(["echo", "actor's child"], check=True)
        pid = ray.get(shell.remote())
        ray.get(Runner.remote().run.remote())
        import time; time.sleep(0.5)
        print("PID", pid)
        ray.shutdown()
    """)
    assert result.returncode == 0, result.stderr
    pid = int(result.stdout.split("PID ")[1].split()[0])
    mine = [ln for ln in result.stdout.splitlines() if ln.startswith(f"(shell pid={pid}) ")]
    assert [ln.split(") ", 1)[1] for ln in mine] == ["first", "second", "third", "fourth",
                                                     "no newline"], result.stdout
    assert f"(shell pid={pid}) to-stderr" in result.stderr.splitlines(), result.stderr
    assert any(ln.startswith("(Runner pid=") and ln.endswith(") actor's child")
               for ln in result.stdout.splitlines()), result.stdout


def test_a_task_capturing_its_own_fd_gets_just_its_text_and_labels_hold_per_pipe():
    """A task that redirects its fd 1 (wurlitzer, a C library's capture) reads back exactly
    what it printed; lines written straight to fd 2 by tasks of two names, back to back,
    each carry their own task's name (each pipe is labelled on its own)."""
    result = _run_driver("""
        import os, sys
        import mpiray as ray
        ray.init(num_cpus=1)
        @ray.remote
        def capture():
            r, w = os.pipe()
            saved = os.dup(1)
            os.dup2(w, 1)
            print("captured line")
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(w)
            return os.read(r, 4096)
        @ray.remote
        def even(i):
            os.write(2, f"even {i}\\n".encode())
        @ray.remote
        def odd(i):
            os.write(2, f"odd {i}\\n".encode())
        print("GOT", repr(ray.get(capture.remote())))
        for i in range(100):
            ray.get((even if i % 2 == 0 else odd).remote(i))
        import time; time.sleep(0.5)
        ray.shutdown()
    """)
    assert result.returncode == 0, result.stderr
    assert "GOT b'captured line\\n'" in result.stdout, result.stdout
    lines = [ln for ln in result.stderr.splitlines() if ln.endswith(tuple("0123456789"))]
    assert len(lines) == 100, result.stderr
    for ln in lines:
        name, text = ln.split(" pid=")[0][1:], ln.split(") ", 1)[1]
        assert text.startswith(name + " "), ln


def test_ray_color_prefix_colours_each_process():
    """RAY_COLOR_PREFIX=1: a worker's prefix is dimmed and coloured (by its pid), as Ray's."""
    env = dict(_env(), RAY_COLOR_PREFIX="1")
    result = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import os, time
        import mpiray as ray
        ray.init(num_cpus=1)
        @ray.remote
        def shout():
            print("coloured")
            return os.getpid()
        print("PID", ray.get(shout.remote()))
        time.sleep(0.3)
    """)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    pid = int(result.stdout.split("PID ")[1].split()[0])
    line = [ln for ln in result.stdout.splitlines() if ln.endswith("coloured")][0]
    assert line.startswith(f"\x1b[2m\x1b[") and f"(shout pid={pid})\x1b[0m coloured" in line, repr(line)


def test_tqdm_ray_progress_reaches_the_driver_from_a_task():
    result = _run_driver("""
        import mpiray as ray
        from mpiray.experimental.tqdm_ray import tqdm
        ray.init(num_cpus=1)
        @ray.remote
        def steps(n):
            bar = tqdm(total=n, desc="steps", flush_interval_s=0)
            for _ in range(n):
                bar.update(1)
            bar.close()
            return bar.n
        assert ray.get(steps.remote(4)) == 4
        assert sum(tqdm(range(3), desc="here")) == 3
        import time; time.sleep(0.3)
        ray.shutdown()
    """)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert any(l.startswith("(steps pid=") and l.endswith("steps: 100%|" + "█" * 20 + "| 4/4")
               for l in lines), result.stderr
    assert [l for l in lines if l.startswith("here:")][-1].endswith("| 3/3"), result.stderr


def test_a_line_a_task_leaves_unfinished_reaches_the_driver():
    """Ray's workers write unbuffered: print(x, end=" ") shows without a newline or flush,
    from tasks and actors, before shutdown (which kills idle workers)."""
    result = _run_driver("""
        import sys, time
        import mpiray as ray
        ray.init(num_cpus=1)
        @ray.remote
        def count():
            for i in range(5):
                print(i, end=" ")
                print(100 + i, end=" ", file=sys.stderr)
        @ray.remote
        class Dots:
            def dot(self):
                print("actor-dot", end="")
        ray.get(count.remote())
        ray.get(Dots.remote().dot.remote())
        time.sleep(1.0)
        print("driver-done", flush=True)
        ray.shutdown()
    """)
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    task_line = next(l for l in out if l.startswith("(count pid="))
    assert task_line.endswith(") 0 1 2 3 4 "), out
    assert any(l.startswith("(count pid=") and l.endswith(") 100 101 102 103 104 ")
               for l in result.stderr.splitlines()), result.stderr
    dot = [i for i, l in enumerate(out) if l.endswith("actor-dot")]
    assert dot and dot[0] < out.index("driver-done"), out   # before the driver moved on


def test_workers_are_titled_by_what_they_run(fresh):
    """As Ray's: ps shows ray::<task name> / ray::<Class>.<method> (its short name too),
    and ray::IDLE for a task worker with nothing to run."""
    ray = fresh
    ray.init(num_cpus=1)

    def title(pid="self"):
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().rstrip(b"\0").decode()
        with open(f"/proc/{pid}/comm") as f:
            return cmdline, f.read().strip()

    @ray.remote
    def unique_task():
        return title(), os.getpid()

    @ray.remote
    class UniqueName:
        def __init__(self):
            self.born = title()

        def f(self):
            return self.born, title()

    (cmdline, comm), pid = ray.get(unique_task.remote(), timeout=30)
    assert cmdline == "ray::unique_task" and comm == "ray::unique_tas"
    assert ray.get(unique_task.options(name="bar").remote(), timeout=30)[0][0] == "ray::bar"
    assert ray.get(UniqueName.remote().f.remote(), timeout=30) == (
        ("ray::UniqueName.__init__", "ray::UniqueName"), ("ray::UniqueName.f", "ray::UniqueName"))
    deadline = time.monotonic() + 10
    while title(pid)[0] != "ray::IDLE" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert title(pid) == ("ray::IDLE", "ray::IDLE")

    # an actor is ray::<Class> while no call runs; one with concurrency groups (calls on
    # threads of their own) keeps its short name, its command line tells the call
    @ray.remote(concurrency_groups={"io": 1})
    class Grouped:
        def f(self):
            return os.getpid(), title()

    @ray.remote
    class Plain:
        def f(self):
            return os.getpid(), title()

    for cls, during in ((Plain, ("ray::Plain.f", "ray::Plain.f")),
                        (Grouped, ("ray::Grouped.f", "ray::Grouped"))):
        actor = cls.remote()   # (held: an actor no handle holds ends)
        pid, seen = ray.get(actor.f.remote(), timeout=30)
        assert seen == during
        deadline = time.monotonic() + 10
        while title(pid)[0] != f"ray::{cls.__name__}" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert title(pid) == (f"ray::{cls.__name__}",) * 2


def test_first_remote_call_initializes(fresh):
    ray = fresh

    @ray.remote
    def f():
        return "auto"

    assert ray.get(f.remote()) == "auto"
    assert ray.is_initialized()


def test_ray_modules_ids_and_job_config(fresh):
    """The names Ray programs import: ray.types, ray.cloudpickle, ray.job_config, the id
    types, and JobConfig's runtime_env / namespace / default actor lifetime honoured."""
    import os

    ray = fresh
    from mpiray.job_config import JobConfig
    from mpiray.types import ObjectRef

    ray.init(num_cpus=1, job_config=JobConfig(runtime_env={"env_vars": {"JOB_VAR": "on"}},
                                              ray_namespace="jobs",
                                              default_actor_lifetime="detached"))
    assert ray.get_runtime_context().namespace == "jobs"
    assert ray.get_runtime_context().runtime_env == {"env_vars": {"JOB_VAR": "on"}}
    assert ray.cloudpickle.loads(ray.cloudpickle.dumps(lambda: 3))() == 3

    @ray.remote
    def env_and_ids():
        ctx = ray.get_runtime_context()
        return os.environ.get("JOB_VAR"), ctx.task_id.hex() == ctx.get_task_id()

    ref = env_and_ids.remote()
    assert isinstance(ref, ObjectRef) and isinstance(ref.task_id(), ray.TaskID)
    assert ray.get(ref, timeout=30) == ("on", True)
    assert ray.TaskID.from_hex(ref.task_id().hex()) == ref.task_id()

    @ray.remote
    class Kept:
        def ping(self):
            return "pong"

    handle = Kept.remote()
    assert ray.get(handle.ping.remote(), timeout=30) == "pong"
    actor_id = handle._actor_id.hex()
    del handle   # detached by the job's default: it lives on without a handle
    time.sleep(0.5)
    from mpiray.util.state import list_actors

    assert [a.state for a in list_actors() if a.actor_id == actor_id] == ["ALIVE"]


def test_log_to_driver_false_keeps_worker_output_away():
    result = _run_driver("""
        import mpiray as ray
        ray.init(num_cpus=1, log_to_driver=False)
        @ray.remote
        def hello():
            print("FROM-THE-WORKER")
            return 7
        print("got", ray.get(hello.remote()))
        import time; time.sleep(0.3)
        ray.shutdown()
    """)
    assert result.returncode == 0, result.stderr
    assert "got 7" in result.stdout and "FROM-THE-WORKER" not in result.stdout + result.stderr


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_processes_a_task_or_actor_started_end_with_its_worker(fresh):
    """As Ray's kill_child_processes_on_worker_exit: a killed actor's subprocess goes with
    it, and a task's goes when its worker does (here at shutdown); while the worker
    lives, they live."""
    ray = fresh
    ray.init(num_cpus=1)

    @ray.remote
    class Spawner:
        def spawn(self):
            return subprocess.Popen(["sleep", "300"]).pid

    @ray.remote
    def spawn():
        return subprocess.Popen(["sleep", "300"]).pid

    @ray.remote(max_retries=0)
    def crash():
        os._exit(1)

    @ray.remote
    class Starter:
        def start_in_background(self):   # the shell exits; its sleep goes on, reparented
            out = subprocess.run(["sh", "-c", "sleep 301 >/dev/null 2>&1 & echo $!"], capture_output=True,
                                 text=True)
            return int(out.stdout)

    keeper = Starter.remote()
    background = ray.get(keeper.start_in_background.remote(), timeout=30)
    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(crash.remote(), timeout=30)   # another worker's end is not its end
    time.sleep(0.5)
    assert _alive(background)
    a = Spawner.remote()
    of_actor = ray.get(a.spawn.remote(), timeout=30)
    of_task = ray.get(spawn.remote(), timeout=30)
    assert _alive(of_actor) and _alive(of_task)
    ray.kill(a)
    deadline = time.monotonic() + 10
    while _alive(of_actor) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(of_actor)
    assert _alive(of_task)
    ray.shutdown()
    deadline = time.monotonic() + 10
    while _alive(of_task) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(of_task) and not _alive(background)


def test_shutdown_unmaps_the_sessions_segments_at_once(fresh):
    """Not at some later garbage collection: repeated init/shutdown cycles would hold
    tens of MB of /dev/shm each meanwhile."""
    ray = fresh
    for _ in range(2):
        ray.init(num_cpus=1)
        session = ray.get_runtime_context().get_job_id()
        ray.shutdown()
        with open(f"/proc/{os.getpid()}/maps") as f:
            assert not [line for line in f if f"-{session}-" in line and "/dev/shm" in line]


UNHANDLED_DRIVER = """
    import gc, sys, time
    import mpiray as ray
    ray.init(num_cpus=1)

    @ray.remote
    def fails(tag):
        raise ValueError(tag)

    @ray.remote
    class A:
        def fails(self):
            raise KeyError("actor-call-never-got")

    @ray.remote
    def takes(x, y=None):
        return x

    dropped = fails.remote("dropped-never-got")
    got = fails.remote("got-it")
    passed_on = fails.remote("passed-to-a-task")
    second_arg = fails.remote("second-failed-argument")
    ray.wait([passed_on, second_arg], num_returns=2)
    waited = fails.remote("only-waited")
    a = A.remote()
    call = a.fails.remote()
    try:
        ray.get(got)
    except ValueError:
        pass
    try:
        ray.get(takes.remote(passed_on, second_arg))
    except ValueError:
        pass
    ray.wait([waited, call], num_returns=2)

    @ray.remote(num_cpus=0)
    def spins():
        while True:
            time.sleep(0.01)

    @ray.remote(num_cpus=0)
    def parent():
        ray.get([spins.remote() for _ in range(2)])

    cancelled = parent.remote()   # a recursive cancel interrupts its children's own code:
    time.sleep(1.0)               # their RayTaskError(TaskCancelledError)s are not reported
    ray.cancel(cancelled)
    try:
        ray.get(cancelled)
    except ray.exceptions.TaskCancelledError:
        pass

    @ray.remote(num_cpus=0)
    def lets_a_cancel_through():   # a failure of its own: reported, as in Ray
        child = spins.remote()
        ray.cancel(child)
        ray.get(child)

    through = lets_a_cancel_through.remote()
    ray.wait([through])
    del dropped, got, passed_on, second_arg, waited, call, cancelled, through
    gc.collect()
    fails.remote("fire-and-forget")
    time.sleep(1.5)
    print("END", file=sys.stderr, flush=True)
    ray.shutdown()
"""


def test_errors_nobody_read_are_reported_when_dropped():
    proc = _run_driver(UNHANDLED_DRIVER)
    assert proc.returncode == 0, proc.stderr
    before_end = proc.stderr.split("END")[0]
    reported = [line for line in before_end.splitlines() if "Unhandled error (suppress" in line]
    assert all("RAY_IGNORE_UNHANDLED_ERRORS=1" in line for line in reported)
    for tag in ("dropped-never-got", "only-waited", "actor-call-never-got", "fire-and-forget",
                "lets_a_cancel_through"):
        assert before_end.count(tag) >= 1, (tag, proc.stderr)
    assert len(reported) == 5, proc.stderr
    for tag in ("got-it", "passed-to-a-task", "second-failed-argument"):
        assert tag not in proc.stderr, (tag, proc.stderr)
    assert not [line for line in reported if "ray::spins()" in line or "ray::parent()" in line]


HELD_ERROR_DRIVER = """
import sys, time
import mpiray as ray
ray.init(num_cpus=1)

@ray.remote
def f(tag):
    raise ValueError(tag)

@ray.remote
class A:
    def fails(self):
        raise KeyError("held-actor-error")

held = f.remote("held-task-error")
read = f.remote("held-but-read")
call = A.remote().fails.remote()
try:
    ray.get(read)
except ValueError:
    pass
time.sleep(2.5)   # (MPIRAY_UNHANDLED_GRACE_S=1 here: the report comes after a second)
print("END", file=sys.stderr, flush=True)
ray.shutdown()
"""


def test_an_interactive_driver_hears_of_errors_it_holds_but_never_read(tmp_path):
    """Ray's interactive mode (a driver whose __main__ has no file: a console, a
    notebook, python -c): a task's error still referenced but unread after a grace period
    is reported, once; a script file's driver reports only when the ref goes."""
    env = dict(_env(), MPIRAY_UNHANDLED_GRACE_S="1")
    proc = subprocess.run([sys.executable, "-c", HELD_ERROR_DRIVER], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    before_end = proc.stderr.split("END")[0]
    assert before_end.count("held-task-error") == 1 and before_end.count("held-actor-error") == 1, proc.stderr
    assert "held-but-read" not in proc.stderr
    script = tmp_path / "job.py"
    script.write_text(HELD_ERROR_DRIVER)
    proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Unhandled error" not in proc.stderr.split("END")[0], proc.stderr
    # a script with a prompt set (sys.ps1, as a console or Jupyter has, and Ray's test
    # sets) is interactive too
    script.write_text('import sys\nsys.ps1 = ">>> "\n' + HELD_ERROR_DRIVER)
    proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.split("END")[0].count("held-task-error") == 1, proc.stderr


def test_unhandled_error_reports_can_be_silenced():
    env = dict(_env(), RAY_IGNORE_UNHANDLED_ERRORS="1")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(UNHANDLED_DRIVER)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Unhandled error" not in proc.stderr


def test_workers_are_the_oom_killers_first_choice_and_store_size_may_be_a_float(fresh):
    """As Ray's: oom_score_adj 1000 and niceness 15 more than the driver's."""
    ray = fresh
    ray.init(num_cpus=1, object_store_memory=100e6)   # (a float, as Ray's tests pass)

    @ray.remote
    def adj():
        with open("/proc/self/oom_score_adj") as f:
            return int(f.read()), os.nice(0)

    @ray.remote
    class Niceness:
        def get(self):
            return os.nice(0)

    assert ray.get(adj.remote()) == (1000, min(19, os.nice(0) + 15))
    assert ray.get(Niceness.remote().get.remote()) == min(19, os.nice(0) + 15)
    ray.shutdown()


@pytest.mark.parametrize("kwargs, error, message", [
    ({"resources": {"CPU": 2}}, AssertionError, "`CPU` cannot be a custom resource"),
    ({"resources": {"GPU": 1}}, ValueError, "use num_gpus= instead"),
    ({"resources": {"object_store_memory": 1}}, AssertionError, "default resources"),
    ({"object_store_memory": 50 << 20}, ValueError, "the minimum allowed is 78643200 bytes"),
    ({"_temp_dir": "relative/dir"}, ValueError, "_temp_dir must be an absolute path"),
])
def test_init_refuses_what_ray_refuses(fresh, kwargs, error, message):
    with pytest.raises(error, match=message):
        fresh.init(num_cpus=1, **kwargs)
    assert not fresh.is_initialized()


def test_ray_override_resources_wins_over_init(fresh, monkeypatch):
    ray = fresh
    monkeypatch.setenv("RAY_OVERRIDE_RESOURCES", '{"CPU": 3, "custom": 2, "memory": 1000000000}')
    ray.init(num_cpus=1, resources={"custom": 1, "other": 1})
    totals = ray.cluster_resources()
    assert (totals["CPU"], totals["custom"], totals["other"], totals["memory"]) == (3, 2, 1, 1e9)
    ray.shutdown()
    monkeypatch.setenv("RAY_OVERRIDE_RESOURCES", '{"CPU": -1}')
    with pytest.raises(ValueError, match="RAY_OVERRIDE_RESOURCES must be a JSON object"):
        ray.init()


def test_an_actor_waiting_on_resources_other_actors_hold_is_reported():
    code = """
        import mpiray as ray
        ray.init(num_cpus=1)

        @ray.remote(num_cpus=1)
        class Holder:
            def ping(self):
                return 1

        first = Holder.remote()
        ray.get(first.ping.remote())
        second = Holder.remote()
        try:
            ray.get(second.ping.remote(), timeout=3)
        except ray.exceptions.GetTimeoutError:
            print("still waiting")
        ray.shutdown()
    """
    env = dict(_env(), MPIRAY_PENDING_ACTOR_WARN_S="0.5")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "still waiting" in proc.stdout
    assert proc.stderr.count("cannot be scheduled right now: {'CPU': 1.0} (actor Holder") == 1, \
        proc.stderr


def test_auto_connect_starts_a_runtime_unless_turned_off(fresh, monkeypatch):
    """As Ray's (AUTO_INIT_APIS, test_auto_init): get_runtime_context() and get_gpu_ids()
    start a runtime; with RAY_ENABLE_AUTO_CONNECT=0 they do not (the context's id getters
    then raise AssertionError, get_gpu_ids() checks it is connected), and the first
    .remote() asks for an explicit init()."""
    ray = fresh
    monkeypatch.setenv("RAY_ENABLE_AUTO_CONNECT", "0")
    rtc = ray.get_runtime_context()
    with pytest.raises(ray.exceptions.RaySystemError, match="ray.init"):
        ray.get_gpu_ids()
    assert not ray.is_initialized()
    with pytest.raises(AssertionError, match="Ray has not been initialized"):
        rtc.get_job_id()
    with pytest.raises(AssertionError, match="Ray has not been initialized"):
        rtc.get_node_id()

    @ray.remote
    def one():
        return 1

    with pytest.raises(ray.exceptions.RaySystemError, match="ray.init"):
        one.remote()
    assert not ray.is_initialized()
    monkeypatch.delenv("RAY_ENABLE_AUTO_CONNECT")
    assert ray.get(one.remote(), timeout=30) == 1   # (auto-connect: started here)
    assert ray.get_runtime_context().get_job_id()
    for starts in (ray.get_runtime_context, ray.get_gpu_ids):
        ray.shutdown()
        starts()
        assert ray.is_initialized()
    assert ray.get_runtime_context().get_job_id()


def test_init_logs_as_rays_driver_does():
    """As Ray's: init() says "Started a local Ray instance." at INFO on stderr, in Ray's
    format; logging_level raises the bar; configure_logging=False leaves logging alone."""
    code = """
    import sys
    import mpiray as ray
    kwargs = eval(sys.argv[1])
    ray.init(num_cpus=1, object_store_memory=80 << 20, **kwargs)
    ray.shutdown()
    """
    seen = {}
    for kwargs in ("{}", "{'logging_level': 'WARNING'}", "{'configure_logging': False}"):
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), kwargs], cwd=ROOT,
                              env=_env(), capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        seen[kwargs] = proc.stderr
    assert seen["{}"].count("Started a local Ray instance.") == 1
    assert "\tINFO " in seen["{}"] and " -- Started" in seen["{}"]
    assert "Started" not in seen["{'logging_level': 'WARNING'}"]
    assert "Started" not in seen["{'configure_logging': False}"]
    # a console handler of the user's on the root logger prints the line, once
    proc = subprocess.run([sys.executable, "-c", "import logging; logging.basicConfig(format="
                           "'ROOT %(message)s'); " + textwrap.dedent(code).replace("\n", "\n"),
                           "{}"], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    assert proc.stderr.count("Started a local Ray instance.") == 1 and "ROOT Started" in proc.stderr


def test_unhandled_errors_go_to_a_replaceable_handler(fresh):
    """As Ray's test_unhandled_errors: ray._private.worker._unhandled_error_handler gets
    each error whose refs all went unread (a task's and an actor call's), none that was
    read, and none while RAY_IGNORE_UNHANDLED_ERRORS=1; global_worker tells the mode."""
    import mpiray._private.worker as worker

    ray = fresh
    ray.init(num_cpus=1)
    seen = []
    default = worker._unhandled_error_handler
    worker._unhandled_error_handler = seen.append
    try:
        @ray.remote
        def fails():
            raise ValueError("unread")

        @ray.remote
        class Fails:
            def f(self):
                raise ValueError("unread too")

        def settle(n, limit=10.0):
            deadline = time.monotonic() + limit
            while len(seen) < n and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.3)
            return len(seen)

        a = Fails.remote()
        unread = [fails.remote(), a.f.remote()]
        ray.wait(unread, num_returns=2, timeout=30)
        del unread
        assert settle(2) == 2 and all(isinstance(e, ray.exceptions.RayTaskError) for e in seen)
        read = fails.remote()
        with pytest.raises(ValueError):
            ray.get(read, timeout=30)
        del read
        assert settle(3, limit=1.5) == 2   # (none comes: a short look)
        os.environ["RAY_IGNORE_UNHANDLED_ERRORS"] = "1"
        try:
            ignored = fails.remote()
            ray.wait([ignored], timeout=30)
            del ignored
            assert settle(3, limit=1.5) == 2
        finally:
            del os.environ["RAY_IGNORE_UNHANDLED_ERRORS"]

        @ray.remote
        def mode():
            return worker.global_worker.mode

        assert (worker.global_worker.mode, ray.get(mode.remote(), timeout=30)) == \
            (ray.SCRIPT_MODE, ray.WORKER_MODE)
    finally:
        worker._unhandled_error_handler = default


def test_a_dead_zygote_is_replaced_and_its_workers_count_as_crashed(fresh):
    """The zygote (the node's worker factory) killed: its workers die with it. A new one
    starts; the task that was running fails as a crashed worker's, a retried one runs
    again, an actor restarts (max_restarts) or dies, and new work runs: nothing hangs."""
    ray = fresh
    ray.init(num_cpus=2)

    @ray.remote(max_retries=0)
    def kills_its_zygote():
        os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(30)

    @ray.remote
    def square(x):
        return x * x

    @ray.remote(max_restarts=1)
    class Restarts:
        def __init__(self):
            self.n = 0

        def bump(self):
            self.n += 1
            return self.n

    @ray.remote
    class Dies:
        def ping(self):
            return "pong"

    keeps, dies = Restarts.remote(), Dies.remote()
    assert ray.get([keeps.bump.remote(), dies.ping.remote()], timeout=60) == [1, "pong"]
    with pytest.raises(ray.exceptions.WorkerCrashedError, match="zygote died"):
        ray.get(kills_its_zygote.remote(), timeout=60)
    assert ray.get([square.remote(i) for i in range(4)], timeout=60) == [0, 1, 4, 9]
    assert ray.get(keeps.bump.remote(), timeout=60) == 1   # (restarted: fresh state)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(dies.ping.remote(), timeout=60)


def test_global_worker_job_id_is_nil_when_not_connected(fresh):
    """As Ray's: global_worker.current_job_id does not start Ray; it is the nil id then."""
    import mpiray._private.worker as worker

    ray = fresh
    assert worker.global_worker.current_job_id.is_nil() and not ray.is_initialized()
    ray.init(num_cpus=1)
    assert worker.global_worker.current_job_id == ray.get_runtime_context().job_id
    assert not worker.global_worker.current_job_id.is_nil()


def test_memory_monitor_kills_the_newest_worker_past_the_threshold(fresh):
    """Ray's memory monitor: past memory_usage_threshold of the node's memory, the newest
    task's worker is killed: its get raises OutOfMemoryError (no retries left), as does a
    running actor call, after which the actor (max_restarts=0) is dead; list_tasks and
    list_workers say why. The threshold is set a little above what is in use now."""
    from mpiray.core.memory_monitor import node_memory
    from mpiray.util.state import list_tasks, list_workers

    ray = fresh
    used, total = node_memory()
    ray.init(num_cpus=1, _system_config={"memory_usage_threshold": min(0.99, used / total + 0.03),
                                         "memory_monitor_refresh_ms": 100})

    def eat():
        chunks = []
        while len(chunks) < 60:   # (6 GB at most: the monitor stops it well before)
            chunks.append(bytearray(100 << 20))
            time.sleep(0.05)
        return "never killed"

    with pytest.raises(ray.exceptions.OutOfMemoryError, match="running low on memory"):
        ray.get(ray.remote(max_retries=0)(eat).remote(), timeout=120)

    @ray.remote(max_restarts=0, num_cpus=0)
    class Eater:
        def eat(self):
            return eat()

        def ping(self):
            return 1

    eater = Eater.remote()
    with pytest.raises(ray.exceptions.OutOfMemoryError):
        ray.get(eater.eat.remote(), timeout=120)
    with pytest.raises(ray.exceptions.RayActorError, match="memory monitor"):
        ray.get(eater.ping.remote(), timeout=30)
    assert [t["error_type"] for t in list_tasks() if t["name"] == "eat"] == ["OUT_OF_MEMORY"]
    assert sum(w["exit_type"] == "NODE_OUT_OF_MEMORY" for w in list_workers()) == 2


def test_memory_monitor_settings_are_checked(fresh, monkeypatch):
    ray = fresh
    with pytest.raises(ValueError, match="memory_usage_threshold"):
        ray.init(num_cpus=1, _system_config={"memory_usage_threshold": 1.5})
    monkeypatch.setenv("RAY_memory_monitor_refresh_ms", "0")   # (off: no monitor thread)
    ray.init(num_cpus=1)
    from mpiray.core import current

    assert current.node().memory_monitor is None


def test_rays_sizing_and_retry_variables(tmp_path):
    """RAY_TASK_MAX_RETRIES sets every task's default retries; RAY_DEFAULT_OBJECT_STORE_
    MEMORY_PROPORTION and _MAX_MEMORY_BYTES size the default store, as Ray's do."""
    env = dict(_env(), RAY_TASK_MAX_RETRIES="1", RAY_DEFAULT_OBJECT_STORE_MEMORY_PROPORTION="0.1",
               RAY_DEFAULT_OBJECT_STORE_MAX_MEMORY_BYTES=str(200 << 20))
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os
        import mpiray as ray
        ray.init(num_cpus=1)
        print("STORE", int(ray.cluster_resources()["object_store_memory"]))
        @ray.remote
        def crash():
            open(os.path.join({str(tmp_path)!r}, str(len(os.listdir({str(tmp_path)!r})))), "w").close()
            os._exit(1)
        try:
            ray.get(crash.remote())
        except ray.exceptions.WorkerCrashedError:
            print("RUNS", len(os.listdir({str(tmp_path)!r})))
    """)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"STORE {200 << 20}" in result.stdout and "RUNS 2" in result.stdout, result.stdout
