"""The README's table: a raybench run of mpiray against Ray 2.60's figures, with the goals.

    .venv/bin/python ../shared/bench/raybench.py --impl mpiray --json /tmp/mpiray.json
    .venv/bin/python benchmarks/ray_table.py /tmp/mpiray.json
"""

import json
import os
import sys

RAY = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "bench", "results", "ray-2.60.json")

# workload -> (goal in words, ratio to Ray or ("abs", bound), lower is better)
GOALS = {
    "init_s": ("≥ 20× faster", 20, True),
    "task_sync_per_s": ("≥ 30×", 30, False),
    "task_async_per_s": ("≥ 20×", 20, False),
    "put_small_per_s": ("≥ 50×", 50, False),
    "get_large_us": ("≤ 5 µs", ("abs", 5.0), True),
    "task_large_arg_gbps": ("≥ 1×", 1, False),
    "wait_1000_ms": ("≤ 0.1 ms", ("abs", 0.1), True),
    "nested_tasks_per_s": ("≥ 10×", 10, False),
    "tree_reduce_s": ("≥ 3× faster", 3, True),
    "runtime_idle_pss_mb": ("≤ 1/5 of Ray", 5, True),
    "actor_sync_per_s": ("≥ 15×", 15, False),
    "actor_async_per_s": ("≥ 10×", 10, False),
    "actor_n_n_per_s": ("≥ 10×", 10, False),
    "actor_create_per_s": ("≥ 20×", 20, False),
    "param_server_updates_per_s": ("≥ 5×", 5, False),
}


def median(entry):
    return entry.get("median") if isinstance(entry, dict) else entry


def fmt(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def main(path):
    ours = json.load(open(path))["results"]
    ray = json.load(open(RAY))["results"]
    print("| workload | unit | mpiray | Ray 2.60 | mpiray vs Ray | goal | met |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, entry in ours.items():
        m, r = median(entry), median(ray.get(name))
        if m is None or not isinstance(m, (int, float)):
            continue
        unit = entry.get("unit", "") if isinstance(entry, dict) else ""
        lower = isinstance(entry, dict) and entry.get("higher_is_better") is False
        goal, target, _ = GOALS.get(name, ("", None, lower))
        ratio = ""
        if isinstance(r, (int, float)) and r and m:
            x = r / m if lower else m / r
            ratio = f"{x:.1f}×" + (" less" if lower else "")
        met = ""
        if isinstance(target, tuple):
            met = "yes" if m <= target[1] else "no"
        elif target is not None and isinstance(r, (int, float)):
            met = "yes" if (r / m if lower else m / r) >= target else "no"
        print(f"| {name} | {unit} | {fmt(m)} | {fmt(r) if isinstance(r, (int, float)) else '—'} | "
              f"{ratio} | {goal} | {met} |")


if __name__ == "__main__":
    main(sys.argv[1])
