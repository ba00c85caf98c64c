"""Where the pool's worker runs (cpp/densa/parallel.hpp, cpu_placement.hpp).

Linux tends to wake a thread on the CPU of the thread that woke it; the pool's worker
and the caller then share one CPU for milliseconds, and a product cut into two slabs
runs at one thread's speed. So the worker keeps off the CPU of the thread that last
handed it work: its affinity mask is the mask it started with, without that CPU, and
follows the caller when the caller moves. The caller's own mask is never changed.
These run in a child process, whose main thread is pinned to one CPU and then another.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

CHILD = r"""
import json, os
import numpy as np
import densa
from densa import native

def workers():
    out = []
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/comm") as f:
            if f.read().strip() == "densa-worker":
                out.append(int(tid))
    return out

densa.set_num_threads(2)
rng = np.random.default_rng(0)
W = rng.standard_normal((1024, 1024)).astype(np.float32)
b = rng.standard_normal(1024).astype(np.float32)
x = rng.standard_normal((512, 1024)).astype(np.float32)
full = sorted(os.sched_getaffinity(0))
first = native.dense_forward(W, b, x, "relu")[0]  # starts the worker with the full mask
report = {"full": full, "steps": []}
for cpu in full[:2] + full[:1]:
    os.sched_setaffinity(0, {cpu})  # this (the main) thread only
    z = native.dense_forward(W, b, x, "relu")[0]
    report["steps"].append({
        "caller": cpu,
        "caller_mask": sorted(os.sched_getaffinity(0)),
        "workers": [sorted(os.sched_getaffinity(t)) for t in workers()],
        "same_bits": bool(np.array_equal(z.view(np.uint32), first.view(np.uint32))),
    })
print(json.dumps(report))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="CPU affinity is Linux's")
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to move between")
def test_the_worker_keeps_off_the_callers_cpu_and_follows_it():
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, timeout=120
    )
    report = json.loads(out.stdout.splitlines()[-1])
    full = report["full"]
    assert len(report["steps"]) == 3
    for step in report["steps"]:
        cpu = step["caller"]
        assert step["caller_mask"] == [cpu]  # the caller's mask is its own business
        assert step["workers"] == [[c for c in full if c != cpu]], step
        assert step["same_bits"], step


def test_a_worker_is_named_for_top_and_ps():
    code = (
        "import os, numpy as np, densa; from densa import native; densa.set_num_threads(3); "
        "W = np.ones((1024, 1024), np.float32); "
        "native.dense_forward(W, np.zeros(1024, np.float32), np.ones((512, 1024), np.float32), "
        "'relu'); "
        "names = [open(f'/proc/self/task/{t}/comm').read().strip() "
        "for t in os.listdir('/proc/self/task')]; "
        "print(names.count('densa-worker'))"
    )
    if not sys.platform.startswith("linux"):
        pytest.skip("thread names are read from /proc")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "2"  # three threads: the caller and two workers
