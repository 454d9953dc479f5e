"""Whole jobs under mpiexec, as a user launches them: normal exit, a driver that raises,
a rank killed mid-job, `python -m mpiray`. Each must end promptly and leave nothing."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import MPIEXEC, ROOT, mpirun, our_segments

pytestmark = pytest.mark.skipif(not os.path.exists(MPIEXEC), reason="mpiexec not in the venv")


def settle(before):
    """Our segments and processes go within a few seconds of the job's end."""
    deadline = time.monotonic() + 10
    while our_segments() != before and time.monotonic() < deadline:
        time.sleep(0.05)
    return our_segments()


def test_normal_exit_leaves_nothing(tmp_path):
    before = our_segments()
    proc, _ = mpirun(3, """
        import mpiray as ray
        ray.init(num_cpus=1)
        @ray.remote
        def f(x):
            return x + 1
        print("result", ray.get([f.remote(i) for i in range(10)]), flush=True)
    """, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "result [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]" in proc.stdout
    assert proc.stdout.count("result") == 1  # code after init() runs on rank 0 only
    assert settle(before) == before


def test_a_pull_into_a_store_the_getter_holds_full_lands_on_disk(tmp_path):
    """The driver keeps every 100 MiB array it got from another node, more than its
    300 MiB store holds: the copies that find no room are received into spill files
    (as Ray's pull falls back to disk) and read from there, instead of failing."""
    before = our_segments()
    proc, _ = mpirun(2, """
        import numpy as np
        import mpiray as ray
        ray.init(num_cpus=1, object_store_memory=300 * 1024 * 1024)
        other = [n["NodeID"] for n in ray.nodes() if n["NodeIndex"] == 1][0]
        from mpiray.util.scheduling_strategies import NodeAffinitySchedulingStrategy as On

        @ray.remote
        def make(v):
            return np.full(100 * 1024 * 1024 // 8, v, dtype=np.float64)

        refs = [make.options(scheduling_strategy=On(other, soft=False)).remote(v) for v in range(5)]
        held = [ray.get(r, timeout=120) for r in refs]
        print("values", [int(a[0]) for a in held], [int(a[-1]) for a in held], flush=True)
    """, tmp_path=tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert "values [0, 1, 2, 3, 4] [0, 1, 2, 3, 4]" in proc.stdout, proc.stdout
    assert settle(before) == before


def test_a_program_the_driver_starts_runs_its_own_runtime(tmp_path):
    """A Python program the driver starts inherits mpiexec's variables; its init() runs
    a runtime of its own (as on one host) instead of failing in MPI_Init, and the
    driver's next init() still forms the cluster."""
    child = tmp_path / "child.py"
    child.write_text("import mpiray as ray\nray.init(num_cpus=1)\n"
                     "print('child', ray.get(ray.remote(lambda: 42).remote()), len(ray.nodes()))\n")
    proc, _ = mpirun(2, f"""
        import subprocess, sys
        import mpiray as ray
        ray.init(num_cpus=1)
        out = subprocess.run([sys.executable, {str(child)!r}], capture_output=True, text=True,
                             timeout=60)
        print(out.stdout.strip(), "rc", out.returncode, flush=True)
        ray.shutdown()
        ray.init(num_cpus=1)
        print("driver nodes", len(ray.nodes()), flush=True)
    """, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "child 42 1 rc 0" in proc.stdout and "driver nodes 2" in proc.stdout, proc.stdout


def test_slurm_tasks_that_mpi_sees_alone_are_told_so(tmp_path):
    """srun without a process management interface for MPI: each task sees a world of
    one rank. It runs as a job of its own (independent jobs may be what was meant), and
    says why it is alone and how to launch one job across the tasks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "PMIX_", "OMPI_", "MPIRAY_MPI"))}
    env.update(SLURM_JOB_ID="7", SLURM_PROCID="1", SLURM_NTASKS="3", PYTHONPATH=ROOT)
    code = "import mpiray as ray\nray.init(num_cpus=1)\nprint('nodes', len(ray.nodes()))\n"
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "nodes 1" in proc.stdout
    assert "task 1 of 3, but MPI sees 1 rank" in proc.stderr and "srun --mpi=pmi2" in proc.stderr


@pytest.mark.parametrize("ranks", [1, 2])
def test_a_fork_of_the_driver_that_exits_leaves_the_job_running(tmp_path, ranks):
    """os.fork() in the driver, the child exiting normally: its exit handlers must not
    shut the driver's runtime down, nor finalize MPI or tell the ranks to leave (the job
    then hung, or ended a node short). Without mpiexec (ranks=1: plain python) too."""
    script = """
        import os, sys
        import mpiray as ray
        ray.init(num_cpus=1)
        @ray.remote
        def f(x):
            return x + 1
        pid = os.fork()
        if pid == 0:
            sys.exit(0)
        os.waitpid(pid, 0)
        print("after the fork", ray.get([f.remote(i) for i in range(4)]), flush=True)
    """
    if ranks == 1:
        code = textwrap.dedent(script)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60, cwd=ROOT)
    else:
        proc, _ = mpirun(ranks, script, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "after the fork [1, 2, 3, 4]" in proc.stdout


def test_a_driver_holding_the_gil_longer_than_the_rank_timeout_does_not_end_the_job(tmp_path):
    """Rank 0's MPI thread cannot read the others' "alive"s while the driver's code holds
    the GIL (a big unpickle, a regex): their silence then is its own, and must not end
    the job (it did, naming a healthy node as dead)."""
    proc, _ = mpirun(3, """
        import ctypes
        import mpiray as ray
        ray.init()
        @ray.remote
        def f():
            return 1
        ray.get([f.options(scheduling_strategy="SPREAD").remote() for _ in range(3)])
        ctypes.PyDLL(None).usleep(4_000_000)   # 4 s in C with the GIL held
        print("still here", sum(ray.get([f.options(scheduling_strategy="SPREAD").remote()
                                         for _ in range(6)])), flush=True)
    """, tmp_path=tmp_path, env={"MPIRAY_RANK_TIMEOUT_S": "2"})
    assert proc.returncode == 0, proc.stderr
    assert "still here 6" in proc.stdout


def test_a_rank_failing_while_the_nodes_start_leaves_nothing(tmp_path):
    """One rank's node cannot start (a bad MPIRAY_RESOURCES): it aborts the job while
    the others' nodes start; their zygotes, told of it only by the broken pipe, still
    remove the segments and spill folders (they left them when the driver was gone
    before their "ready")."""
    before = our_segments()
    script = tmp_path / "job.py"
    script.write_text("import mpiray as ray\nray.init()\nprint('never', flush=True)\n")
    env = dict(os.environ, MPIRAY_NODE_PER_RANK="1", PYTHONPATH=ROOT)
    for _ in range(2):
        proc = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(script), ":", "-n", "1",
                               "-env", "MPIRAY_RESOURCES", '{"x": -1}', sys.executable, str(script)],
                              cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0 and "must be a non-negative number" in proc.stderr
        assert "never" not in proc.stdout
    deadline = time.monotonic() + 10
    while set(our_segments()) - set(before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not set(our_segments()) - set(before)


def test_exception_in_driver_ends_every_rank(tmp_path):
    before = our_segments()
    proc, took = mpirun(3, """
        import mpiray as ray
        ray.init(num_cpus=1)
        @ray.remote
        def f():
            return 1
        ray.get(f.remote())
        raise RuntimeError("driver failed on purpose")
    """, tmp_path=tmp_path)
    assert proc.returncode != 0
    assert "driver failed on purpose" in proc.stderr
    assert took < 60
    assert settle(before) == before


def test_spilled_objects_are_served_once_sends_free_the_store(tmp_path):
    """Node 1's small store holds objects being sent (pinned until sent) and spilled ones:
    a fetch that cannot bring one back yet is served when room comes, not dropped (the
    driver's get waited for ever)."""
    before = our_segments()
    proc, _ = mpirun(3, """
        import numpy as np
        import mpiray as ray
        ray.init(num_cpus=1)
        @ray.remote(resources={"node:1": 0.01})
        def make(i):
            return np.full(10 * 1024 * 1024, float(i))     # 80 MB
        @ray.remote(resources={"node:2": 0.01})
        def first(a):
            return float(a[0])
        refs = [make.remote(i) for i in range(6)]         # 480 MB: some spill on node 1
        print("node 2", ray.get([first.remote(r) for r in refs], timeout=120), flush=True)
        print("driver", [float(a[0]) for a in ray.get(refs, timeout=120)], flush=True)
    """, tmp_path=tmp_path, env={"MPIRAY_OBJECT_STORE_MEMORY": str(300 << 20)})
    assert proc.returncode == 0, proc.stderr
    assert "node 2 [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]" in proc.stdout
    assert "driver [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]" in proc.stdout
    assert settle(before) == before


def mpich_segments():
    return {e for e in os.listdir("/dev/shm") if e.startswith("mpich_shm_")}


def test_killed_rank_stops_the_job_promptly(tmp_path):
    before = our_segments()
    mpich_before = mpich_segments()
    proc, took = mpirun(3, """
        import os, signal, time
        import mpiray as ray
        ray.init(num_cpus=1)
        victim = ray.nodes()[2]["Pid"]
        print("killing", victim, flush=True)
        os.kill(victim, signal.SIGKILL)
        @ray.remote
        def slow():
            time.sleep(600)
        ray.get(slow.remote())   # would hang forever if the job went on
    """, tmp_path=tmp_path, timeout=90)
    assert proc.returncode != 0
    assert took < 60
    out = proc.stdout + proc.stderr
    # MPICH's launcher says that a rank ended badly and where (host and a pid; not always
    # the pid of the rank that died first: it names the first end it notices).
    assert "BAD TERMINATION" in out and "RUNNING AT" in out
    assert settle(before) == before
    # MPICH never cleans its segments after a killed job: mpiray unlinks them at init.
    assert mpich_segments() - mpich_before == set()


def test_module_launcher_runs_the_script_on_rank_0_only(tmp_path):
    proc, _ = mpirun(3, """
        print("before init", flush=True)
        import mpiray as ray
        ray.init(num_cpus=1)
        print("nodes", len(ray.nodes()), flush=True)
    """, module=True, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("before init") == 1
    assert "nodes 3" in proc.stdout


def test_module_launcher_ends_every_rank_when_the_script_fails_before_init(tmp_path):
    before = our_segments()
    proc, took = mpirun(3, """
        raise ValueError("bad argument, before init")
    """, module=True, tmp_path=tmp_path, timeout=60)
    assert proc.returncode != 0 and "bad argument, before init" in proc.stderr
    assert took < 30
    proc, _ = mpirun(3, """print("never touches mpiray", flush=True)""", module=True,
                     tmp_path=tmp_path, timeout=60)
    assert proc.returncode == 0 and proc.stdout.count("never touches mpiray") == 1
    assert settle(before) == before


def test_module_launcher_makes_the_scripts_directory_importable_on_every_node(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "helper.py").write_text("def double(x):\n    return 2 * x\n")
    (sub / "job.py").write_text(textwrap.dedent("""
        import mpiray as ray
        from helper import double
        ray.init(num_cpus=1)
        @ray.remote
        def f(i):
            return double(i)
        print("doubled", ray.get([f.options(resources={f"node:{i}": 0.01}).remote(i)
                                  for i in range(3)]), flush=True)
    """))
    env = dict(os.environ, MPIRAY_NODE_PER_RANK="1", PYTHONPATH=ROOT)
    proc = subprocess.run([MPIEXEC, "-n", "3", sys.executable, "-m", "mpiray", "sub/job.py"],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "doubled [0, 2, 4]" in proc.stdout


@pytest.mark.parametrize("example", ["tree_reduce.py", "parameter_server.py", "streaming_pipeline.py"])
def test_examples_run_under_mpiexec(example, tmp_path):
    with open(os.path.join(ROOT, "examples", example)) as f:
        code = f.read()
    proc, _ = mpirun(4, code, tmp_path=tmp_path, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_gpus_of_a_host_are_split_among_its_nodes(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    proc, _ = mpirun(2, """
        import os, time
        import mpiray as ray
        ray.init(num_cpus=2)
        assert ray.cluster_resources()["GPU"] == 4
        @ray.remote(num_gpus=1)
        def hold():
            time.sleep(1.0)   # all four run at once: each must have a GPU of its own
            return os.environ["CUDA_VISIBLE_DEVICES"], ray.get_runtime_context().get_node_id()[:4]
        got = ray.get([hold.remote() for _ in range(4)])
        print("gpus", sorted(g for g, _ in got), "nodes", sorted({n for _, n in got}), flush=True)
    """, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "gpus ['0', '1', '2', '3'] nodes ['0000', '0001']" in proc.stdout


@pytest.mark.parametrize("per_rank", [True, False])
def test_idle_ranks_do_not_spin(per_rank, tmp_path):
    proc, _ = mpirun(3, """
        import os, time
        import mpiray as ray
        ray.init(num_cpus=1)
        @ray.remote
        def f():
            return 1
        ray.get([f.remote() for _ in range(20)])
        # every rank of this job, the driver included (its MPI thread polls)
        ranks = [int(p) for p in os.popen("pgrep -f job.py").read().split()]
        def cpu():
            total = 0
            for pid in ranks:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            return total / os.sysconf("SC_CLK_TCK")
        time.sleep(1.5)   # past the MPI threads' warm naps (docs/mpi.md)
        c0, t0 = cpu(), time.monotonic()
        time.sleep(3)
        share = (cpu() - c0) / (time.monotonic() - t0)
        print(f"ranks {len(ranks)} idle cpu {share:.3f}", flush=True)
    """, per_rank=per_rank, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    line = next(l for l in proc.stdout.splitlines() if l.startswith("ranks"))
    n, share = int(line.split()[1]), float(line.split()[-1])
    assert n >= 3
    print(line)
    # one rank spinning would be ~1.0 by itself; three idle ones together, a few percent
    assert share < 0.5, line


def test_hung_rank_ends_the_job_naming_it(tmp_path, monkeypatch):
    """A rank that stops answering (SIGSTOP: mpiexec sees nothing wrong) must not hang
    the driver: rank 0 ends the job and names the rank and its host."""
    monkeypatch.setenv("MPIRAY_RANK_TIMEOUT_S", "3")
    before = our_segments()
    proc, took = mpirun(3, """
        import os, signal, time
        import mpiray as ray
        ray.init(num_cpus=1)
        victim = ray.nodes()[2]["Pid"]
        os.kill(victim, signal.SIGSTOP)
        @ray.remote(resources={"node:2": 0.01})
        def there():
            return 1
        ray.get(there.remote())   # node 2 never answers
    """, tmp_path=tmp_path, timeout=90)
    assert proc.returncode != 0
    assert took < 60
    assert "node 2 (rank 2 on host" in proc.stderr, proc.stderr[-2000:]
    assert settle(before) == before


def test_a_hung_rank_that_runs_no_node_ends_the_job_at_exit(tmp_path):
    """Ranks sharing a node: the ones that are not its leader run nothing and send no
    heartbeats; one that hangs (SIGSTOP) must not keep the job (MPI_Finalize) for ever:
    the driver's exit waits MPIRAY_EXIT_TIMEOUT_S for every rank's answer, then ends the
    job naming it."""
    proc, took = mpirun(3, """
        import os, signal
        from mpi4py import MPI
        with open(f"rank{MPI.COMM_WORLD.rank}.pid", "w") as f:
            f.write(str(os.getpid()))
        import mpiray as ray
        ray.init(num_cpus=1)
        print("sum", sum(ray.get([ray.remote(lambda x: x).remote(i) for i in range(10)])), flush=True)
        with open("rank2.pid") as f:
            os.kill(int(f.read()), signal.SIGSTOP)
    """, per_rank=False, tmp_path=tmp_path, timeout=90, env={"MPIRAY_EXIT_TIMEOUT_S": "3"})
    assert "sum 45" in proc.stdout
    assert proc.returncode != 0 and took < 60
    assert "rank 2 on host" in proc.stderr and "did not answer the driver's exit" in proc.stderr, \
        proc.stderr[-2000:]


def test_ctrl_c_ends_every_rank(tmp_path):
    before = our_segments()
    script = os.path.join(str(tmp_path), "job.py")
    with open(script, "w") as f:
        f.write(textwrap.dedent("""
            import time
            import mpiray as ray
            ray.init(num_cpus=1)
            @ray.remote
            def slow():
                time.sleep(100)
            try:   # ("ready" inside: the Ctrl-C that follows it lands in the try)
                refs = [slow.remote() for _ in range(4)]
                print("ready", flush=True)
                ray.get(refs)
            finally:   # the driver's own clean-up runs (the other ranks wait for it)
                time.sleep(0.3)
                print("cleaned up", flush=True)
        """))
    env = dict(os.environ, MPIRAY_NODE_PER_RANK="1", PYTHONPATH=ROOT)
    proc = subprocess.Popen([MPIEXEC, "-n", "3", sys.executable, script], cwd=str(tmp_path), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal does
        assert proc.wait(timeout=30) == 130
        assert "cleaned up" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert settle(before) == before


def test_the_jobs_runtime_env_reaches_every_node(tmp_path):
    proc, _ = mpirun(3, """
        import os
        import mpiray as ray
        ray.init(num_cpus=1, runtime_env={"env_vars": {"JOB_VAR": "everywhere"}})
        @ray.remote
        def read():
            return os.environ.get("JOB_VAR"), ray.get_runtime_context().get_node_id()[:4]
        got = ray.get([read.options(resources={f"node:{i}": 0.01}).remote() for i in range(3)])
        print("got", got, flush=True)
    """, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "got [('everywhere', '0000'), ('everywhere', '0001'), ('everywhere', '0002')]" in proc.stdout


def test_mpiray_resources_gives_a_node_custom_resources(tmp_path):
    """MPIRAY_RESOURCES (JSON) describes the nodes other than the driver's (init()'s
    keywords describe that one); a bad value fails the job with a message naming it."""
    code = """
        import mpiray as ray
        ray.init(num_cpus=1)
        @ray.remote(resources={"bigmem": 1})
        def where():
            return int(ray.get_runtime_context().get_node_id()[:4], 16)
        print("bigmem", ray.cluster_resources().get("bigmem"), sorted(set(ray.get([where.remote() for _ in range(4)]))), flush=True)
    """
    proc, _ = mpirun(3, code, tmp_path=tmp_path, env={"MPIRAY_RESOURCES": '{"bigmem": 2}'})
    assert proc.returncode == 0, proc.stderr
    assert "bigmem 4.0 [1, 2]" in proc.stdout
    proc, took = mpirun(2, code, tmp_path=tmp_path, env={"MPIRAY_RESOURCES": "bigmem=2"})
    assert proc.returncode != 0 and "MPIRAY_RESOURCES must be a JSON object" in proc.stderr
    assert took < 60


@pytest.mark.parametrize("fails, message", [
    # after MPI_Init: the others wait in init()'s first barrier, which naps (no spinning)
    ("from mpi4py import MPI\nif MPI.COMM_WORLD.rank == 1:", "reached init() within 3 s"),
    # before it: the others wait in MPI_Init, which holds the GIL (a native watchdog)
    ("import os\nif os.environ.get('PMI_RANK') == '1':", "reached MPI_Init within 3 s"),
])
def test_a_rank_that_fails_before_init_does_not_leave_the_others_waiting(tmp_path, fails, message):
    """Under plain mpiexec every rank runs the script: one that raises before init()
    leaves the others waiting; MPIRAY_INIT_TIMEOUT_S ends the job with a message saying
    why, and no MPICH segment is left."""
    before = set(os.listdir("/dev/shm"))
    proc, took = mpirun(3, fails + "\n    raise RuntimeError('fails before init')\n"
                        "import mpiray as ray\nray.init()\n",
                        tmp_path=tmp_path, env={"MPIRAY_INIT_TIMEOUT_S": "3"})
    assert proc.returncode != 0
    assert "not every rank " + message in proc.stderr, proc.stderr
    assert took < 60
    assert not {e for e in set(os.listdir("/dev/shm")) - before if e.startswith("mpich_shm_")}


def test_labels_place_work_on_the_nodes_that_have_them(tmp_path):
    """init(labels=) labels the driver's node, MPIRAY_LABELS the others; label_selector
    and NodeLabelSchedulingStrategy send tasks and actors only to nodes that match."""
    code = """
        import mpiray as ray
        from mpiray.util.scheduling_strategies import NodeLabelSchedulingStrategy, In
        ray.init(num_cpus=1, labels={"zone": "a"})
        @ray.remote
        def where():
            return int(ray.get_runtime_context().get_node_id()[:4], 16)
        @ray.remote
        class Where:
            def node(self):
                return ray.get_runtime_context().get_node_labels()["zone"]
        print("labels", [n["Labels"]["zone"] for n in ray.nodes()], flush=True)
        b = sorted(set(ray.get([where.options(label_selector={"zone": "b"}).remote() for _ in range(8)])))
        a = sorted(set(ray.get([where.options(label_selector={"zone": "!b"}).remote() for _ in range(4)])))
        hard = NodeLabelSchedulingStrategy(hard={"zone": In("b")})
        actors = [Where.options(scheduling_strategy=hard).remote() for _ in range(2)]
        print("placed", b, a, ray.get([x.node.remote() for x in actors]), flush=True)
    """
    proc, _ = mpirun(3, code, tmp_path=tmp_path, env={"MPIRAY_LABELS": '{"zone": "b"}'})
    assert proc.returncode == 0, proc.stderr
    assert "labels ['a', 'b', 'b']" in proc.stdout
    assert "placed [1, 2] [0] ['b', 'b']" in proc.stdout


def test_soft_affinity_spills_from_a_busy_node_only_when_asked(tmp_path):
    """NodeAffinitySchedulingStrategy(soft=True) waits for its node while that node is
    busy; with _spill_on_unavailable=True a task or actor goes to another node instead."""
    code = """
        import time
        import mpiray as ray
        from mpiray.util.scheduling_strategies import NodeAffinitySchedulingStrategy as On
        ray.init(num_cpus=1)
        here = lambda: int(ray.get_runtime_context().get_node_id()[:4], 16)
        @ray.remote
        def where():
            return here()
        @ray.remote
        def hold(s):
            time.sleep(s)
        @ray.remote
        class Where:
            def node(self):
                return here()
        other = ray.nodes()[1]["NodeID"]
        busy = hold.options(scheduling_strategy=On(other, soft=False)).remote(4)
        time.sleep(1.0)
        spilled = ray.get(where.options(scheduling_strategy=On(other, soft=True, _spill_on_unavailable=True)).remote())
        actor = Where.options(num_cpus=1, scheduling_strategy=On(other, soft=True, _spill_on_unavailable=True)).remote()
        moved = ray.get(actor.node.remote())
        ray.kill(actor)
        waited = ray.get(where.options(scheduling_strategy=On(other, soft=True)).remote())
        print("placed", spilled, moved, waited, ray.wait([busy], timeout=0)[0] != [], flush=True)
    """
    proc, _ = mpirun(2, code, tmp_path=tmp_path, env={"MPIRAY_NUM_CPUS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "placed 0 0 1 True" in proc.stdout


def test_internal_kv_is_one_store_for_every_node(tmp_path):
    code = """
        import mpiray as ray
        from mpiray.experimental.internal_kv import _internal_kv_get, _internal_kv_list, _internal_kv_put
        ray.init(num_cpus=1)
        _internal_kv_put("driver", b"d")
        @ray.remote(resources={"node:1": 0.01})
        def on_node_1():
            _internal_kv_put(b"remote", b"r")
            return _internal_kv_get("driver"), sorted(_internal_kv_list(""))
        print("kv", ray.get(on_node_1.remote()), _internal_kv_get("remote"), flush=True)
    """
    proc, _ = mpirun(2, code, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "kv (b'd', [b'driver', b'remote']) b'r'" in proc.stdout
