"""Every kx loss under data-parallel training equals the single-device run (issue 11, item 7).

One SGD step of a plain `keras.Model` per loss class, in a subprocess (devices are configured
before the backend starts): TensorFlow's `MirroredStrategy` over 2 logical CPUs, and JAX's
`keras.distribution.DataParallel` over 2 host devices. The reference is Keras' own trainer on
one device, from the same initial weights:

- a loss that is a mean of per-sample values gives, distributed, the single-device loss and
  weights of the global batch;
- a batch statistic (`WeightedKappaLoss`, `per_image=False` overlap and Lovasz losses) is
  computed per replica under `tf.distribute`, so the distributed step is the mean of the
  single-device steps on each replica's half (not their sum: the bug this guards against made
  `WeightedKappaLoss` exactly 2x); under JAX's DataParallel it is computed on the global batch.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import BACKEND

sys.path.insert(0, str(Path(__file__).parent))
import _distribution_worker as worker  # noqa: E402

WORKER = str(Path(__file__).with_name("_distribution_worker.py"))
NAMES = sorted(worker.cases())
RTOL, ATOL = 1e-5, 1e-6

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    BACKEND == "torch", reason="Keras 3 has no multi-device data parallelism on torch "
    "(tf.distribute is TensorFlow's, keras.distribution is JAX-only)")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("distribution") / "losses.npz"
    mode = "mirrored" if BACKEND == "tensorflow" else "data_parallel"
    root = str(Path(__file__).parents[2])  # this checkout's kx, not an installed one
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": path}
    proc = subprocess.run([sys.executable, WORKER, mode, str(out)], env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return dict(np.load(out))


def result(runs, name, run):
    return runs[f"{name}/{run}/loss"], runs[f"{name}/{run}/weights"]


@pytest.mark.parametrize("name", NAMES)
def test_distributed_step_equals_the_single_device_step(runs, name):
    loss, weights = result(runs, name, "dist")
    if name in worker.BATCH_STATISTICS and BACKEND == "tensorflow":
        # per replica: the mean of the two halves' steps
        halves = [result(runs, name, f"half{i}") for i in (0, 1)]
        want_loss = (halves[0][0] + halves[1][0]) / 2
        want_weights = (halves[0][1] + halves[1][1]) / 2
    else:
        want_loss, want_weights = result(runs, name, "full")
    np.testing.assert_allclose(loss, want_loss, rtol=RTOL, atol=ATOL, err_msg=f"{name} loss")
    np.testing.assert_allclose(weights, want_weights, rtol=RTOL, atol=ATOL,
                               err_msg=f"{name} weights")


@pytest.mark.skipif(BACKEND != "tensorflow", reason="the halves are run for MirroredStrategy")
def test_the_batch_statistics_are_really_per_replica_under_mirrored(runs):
    """The halves' mean differs from the global-batch value for the batch statistics (so the
    test above tells the two apart), and not for the per-sample losses."""
    for name in NAMES:
        full = result(runs, name, "full")[0]
        mean = (result(runs, name, "half0")[0] + result(runs, name, "half1")[0]) / 2
        same = np.isclose(full, mean, rtol=RTOL, atol=ATOL)
        assert same != (name in worker.BATCH_STATISTICS), (name, full, mean)
