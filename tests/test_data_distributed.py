"""kx.DataGenerator feeding a JAX job of two processes (loopback, CPU collectives): each process
reads half of every global batch, and the job trains exactly as one process does."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import BACKEND
from test_model_scaling import assert_same_run, free_port, load

WORKER = str(Path(__file__).with_name("jax_process_worker.py"))
ROOT = str(Path(__file__).parents[1])


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "jax", reason="Keras 3.15 multi-process distribution is JAX-only")
def test_two_jax_processes_equal_one_on_the_same_global_batches(tmp_path):
    import distributed_worker
    import jax_process_worker

    port = str(free_port())
    path = os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])  # this checkout's kx
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": path}
    procs = [
        subprocess.Popen([sys.executable, WORKER, str(i), port, str(tmp_path / f"p{i}.npz")],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(2)
    ]  # fmt: skip
    try:
        outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-4000:]
    history, weights, shard = jax_process_worker.fit_generator(distributed_worker.build())
    assert shard == (None, distributed_worker.BATCH)
    for i in range(2):  # each process reads its half of every global batch
        got = json.loads(str(np.load(tmp_path / f"p{i}.npz")["shard"]))
        assert got == [[i, 2], distributed_worker.BATCH // 2]
        assert_same_run(load(tmp_path / f"p{i}.npz"), (history, weights))
