"""Ray's log deduplication (core/log_dedup.py): unit checks with a fake clock, then a
driver whose actors print alike."""

import subprocess
import sys
import textwrap

from conftest import ROOT

from mpiray.core.log_dedup import LogDeduplicator, LogLines


def test_lines_alike_from_several_processes_are_counted_then_summed_up():
    d = LogDeduplicator(window_s=5.0, allow="", skip="")
    assert d.feed("(A pid=1) loading shard 1", 0.0) == ["(A pid=1) loading shard 1"]
    assert d.feed("(A pid=1) loading shard 2", 0.1) == ["(A pid=1) loading shard 2"]  # (its own)
    assert d.feed("(A pid=2) loading shard 3", 0.2) == []
    assert d.feed("(A pid=3) loading shard 4", 0.3) == []
    assert d.feed("plain line without a prefix", 0.4) == ["plain line without a prefix"]
    assert d.feed("(A pid=2) ValueError: shard 3", 0.5) == ["(A pid=2) ValueError: shard 3"]
    assert d.feed("(A pid=3) ValueError: shard 4", 0.6) == ["(A pid=3) ValueError: shard 4"]
    assert d.due(1.0) == []   # (the window is not over)
    (summary,) = d.due(5.5)
    assert summary.startswith("(A pid=3) loading shard 4 [repeated 2x across cluster]")
    assert "RAY_DEDUP_LOGS=0" in summary   # (Ray's hint, the first time)
    assert d.feed("(A pid=2) loading shard 5", 6.0) == []   # counting goes on
    assert d.due(20.0, everything=True) == ["(A pid=2) loading shard 5"]
    assert not d.pending()


def test_allow_and_skip_patterns_and_unfinished_lines():
    d = LogDeduplicator(window_s=5.0, allow="keep", skip="noise")
    assert d.feed("(B pid=1) keep me", 0.0) == ["(B pid=1) keep me"]
    assert d.feed("(B pid=2) keep me", 0.0) == ["(B pid=2) keep me"]
    assert d.feed("(B pid=3) noise", 0.0) == []
    lines = LogLines("stdout")
    if lines.dedup is None:   # (RAY_DEDUP_LOGS=0 in the environment)
        return
    assert lines.feed_lines(["(C pid=1) 50% done", "(C pid=2) 50% done"]) == "(C pid=1) 50% done\n"
    assert lines.close() == "(C pid=2) 50% done\n"   # (counted once: shown as it was)


def test_a_driver_sees_lines_alike_once_then_counted(tmp_path):
    code = textwrap.dedent("""
        import time
        import mpiray as ray
        ray.init(num_cpus=2)
        @ray.remote(num_cpus=0)
        class Loader:
            def load(self, i):
                print(f"loading shard {i}")
        loaders = [Loader.remote() for _ in range(4)]
        ray.get([a.load.remote(i) for i, a in enumerate(loaders)])
        time.sleep(0.5)
        print("MIDDLE", flush=True)
        ray.shutdown()   # (what is still counted is printed as the node stops)
    """)
    for dedup, shown in (("1", 1), ("0", 4)):
        env = dict(__import__("os").environ, PYTHONPATH=ROOT, RAY_DEDUP_LOGS=dedup,
                   RAY_DEDUP_LOGS_AGG_WINDOW_S="60")
        out = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), env=env,
                             capture_output=True, text=True, timeout=60).stdout
        before, _, after = out.partition("MIDDLE")
        assert before.count("loading shard") == shown, out
        if dedup == "1":
            assert "[repeated 3x across cluster]" in after, out
