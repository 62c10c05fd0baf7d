"""CustomModel at scale: mixed precision, jit, steps_per_execution and distributed training."""

import functools
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import BACKEND, assert_close
from sklearn.datasets import load_digits
from test_model import data, kx_losses, two_output_model

import kx

WORKER = str(Path(__file__).with_name("distributed_worker.py"))


@pytest.fixture
def dtype_policy():
    def set_policy(name):
        keras.config.set_dtype_policy(name)

    yield set_policy
    keras.config.set_dtype_policy("float32")


def digits_accuracy(policy, optimizer=None, epochs=6):
    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(0)
    digits = load_digits()
    x, y = (digits.data / 16).astype("float32"), digits.target
    image = keras.Input((64,), name="image")
    h = keras.layers.Dense(64, activation="relu")(image)
    model = kx.CustomModel({"image": image}, {"logits": keras.layers.Dense(10, name="logits")(h)})
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(3e-3),
        loss={"ce": kx.LossDefinition("label", "logits", keras.losses.SparseCategoricalCrossentropy(
                  from_logits=True)),
              "small": kx.ExtendedLoss(lambda it, out: 1e-4 * keras.ops.mean(
                  keras.ops.square(out["logits"]), axis=-1))},
        metrics={"acc": kx.MetricDefinition("label", "logits",
                                            keras.metrics.SparseCategoricalAccuracy())},
    )  # fmt: skip
    h = model.fit({"image": x}, {"label": y}, validation_split=0.25, epochs=epochs,
                  batch_size=64, verbose=0)
    return model, h.history


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_reaches_float32_accuracy(policy, dtype_policy):
    _, reference = digits_accuracy("float32")
    model, history = digits_accuracy(policy)
    assert model.layers[1].compute_dtype == policy.split("_")[1]
    if policy == "mixed_float16":  # Keras wraps the optimizer; kx must keep scale_loss
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert all(np.isfinite(history["loss"]))
    assert abs(history["val_acc"][-1] - reference["val_acc"][-1]) <= 0.01


def test_explicit_loss_scale_optimizer(dtype_policy):
    _, reference = digits_accuracy("float32")
    opt = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(3e-3))
    model, history = digits_accuracy("mixed_float16", optimizer=opt)
    assert model.optimizer is opt
    assert abs(history["val_acc"][-1] - reference["val_acc"][-1]) <= 0.01


def test_losses_are_float32_under_mixed_precision(dtype_policy):
    dtype_policy("mixed_float16")
    x, y, recon = data()
    model = two_output_model()
    model.compile(optimizer="sgd", loss={
        **kx_losses(),
        "half": kx.ExtendedLoss(lambda it, out: keras.ops.mean(out["recon"], axis=-1)),
    })  # fmt: skip
    outputs = model({"x": x})
    assert keras.backend.standardize_dtype(outputs["recon"].dtype) == "float16"
    loss = model.compute_loss({"x": x}, {"logits": y, "recon": recon}, outputs)
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"


def test_overflowing_step_is_skipped_and_scale_halves(dtype_policy):
    """A loss scale of 2**100 is finite in float32 but overflows float16 gradients."""
    dtype_policy("mixed_float16")
    x, y, recon = data()
    model = two_output_model()
    opt = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1), initial_scale=2.0**100)
    model.compile(optimizer=opt, loss=kx_losses())
    before = model.get_weights()
    logs = model.train_on_batch({"x": x}, {"logits": y, "recon": recon}, return_dict=True)
    assert np.isfinite(logs["loss"]) and np.isfinite(logs["ce"])  # logged unscaled
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # the update was skipped
    assert float(keras.ops.convert_to_numpy(opt.dynamic_scale)) == 2.0**99
    model.train_on_batch({"x": x}, {"logits": y, "recon": recon})
    ok_scale = float(keras.ops.convert_to_numpy(opt.dynamic_scale))
    assert ok_scale <= 2.0**99


def fit_history(**compile_kwargs):
    x, y, recon = data()
    model = two_output_model()
    model.compile(
        optimizer=keras.optimizers.SGD(0.1), loss=kx_losses(), loss_weights={"mse": 0.5},
        metrics={"acc": kx.MetricDefinition("logits", "logits",
                                            keras.metrics.SparseCategoricalAccuracy())},
        **compile_kwargs,
    )  # fmt: skip
    return model.fit({"x": x}, {"logits": y, "recon": recon}, batch_size=16, shuffle=False,
                     epochs=2, verbose=0, class_weight={"logits": {0: 2.0}}).history


def assert_same_history(got, want):
    assert got.keys() == want.keys()
    for k in want:
        assert_close(got[k], want[k], rtol=1e-4, atol=1e-6, err_msg=k)


@pytest.fixture
def torch_compile_without_codegen(monkeypatch):
    """On torch, jit_compile=True means torch.compile. Its default inductor backend spends about
    a minute generating C++ on a 2-core CPU (checked by hand: same History); the test uses the
    aot_eager backend, which traces kx's step with dynamo and AOT autograd the same way but
    skips the code generation."""
    if BACKEND == "torch":
        import torch

        monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))


def test_jit_compile_matches_eager(torch_compile_without_codegen):
    assert_same_history(fit_history(jit_compile=True), fit_history(run_eagerly=True))


@pytest.mark.skipif(BACKEND == "torch", reason="Keras refuses steps_per_execution > 1 on torch")
def test_steps_per_execution_matches_eager():
    assert_same_history(fit_history(steps_per_execution=3), fit_history(run_eagerly=True))


# -- distribution (subprocesses: devices must be configured before the backend starts) -------------


def run_worker(mode, out, env=None):
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.Popen([sys.executable, WORKER, mode, str(out)], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc, timeout=600):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]


def load(path, prefix=""):
    arrays = np.load(path)
    n = len([k for k in arrays if k.startswith(prefix + "w")])
    return json.loads(str(arrays[prefix + "history"])), [arrays[f"{prefix}w{i}"] for i in range(n)]


def assert_same_run(got, want, rtol=1e-5):
    (h1, w1), (h2, w2) = got, want
    assert h1.keys() == h2.keys()
    for k in h2:
        assert_close(h1[k], h2[k], rtol=rtol, atol=1e-6, err_msg=k)
    for a, b in zip(w1, w2):
        assert_close(a, b, rtol=rtol, atol=1e-6)


@pytest.fixture(scope="module")
def mirrored_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mirrored") / "mirrored.npz"
    finish(run_worker("mirrored", out))
    return out


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute is the TensorFlow backend's")
def test_mirrored_strategy_equals_single_device(mirrored_run):
    assert_same_run(load(mirrored_run), load(mirrored_run, "ref_"))


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute is the TensorFlow backend's")
def test_mirrored_strategy_folds_class_weights_of_a_dataset_in_every_replica(mirrored_run):
    """tf.data batches are class-weighted inside the step, by every replica's thread."""
    assert_same_run(load(mirrored_run, "dataset_"), load(mirrored_run, "ref_"))


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute is the TensorFlow backend's")
def test_mirrored_strategy_scheduled_loss_weight_equals_single_device(mirrored_run):
    assert_scheduled_run(mirrored_run)


@pytest.fixture(scope="module")
def data_parallel_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("data_parallel") / "data_parallel.npz"
    finish(run_worker("data_parallel", out))
    return out


@pytest.mark.skipif(BACKEND != "jax", reason="keras.distribution.DataParallel is JAX-only here")
def test_jax_data_parallel_equals_single_device(data_parallel_run):
    assert_same_run(load(data_parallel_run), load(data_parallel_run, "ref_"))


@pytest.mark.skipif(BACKEND != "jax", reason="keras.distribution.DataParallel is JAX-only here")
def test_jax_data_parallel_scheduled_loss_weight_equals_single_device(data_parallel_run):
    assert_scheduled_run(data_parallel_run)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute is the TensorFlow backend's")
def test_mirrored_strategy_variable_loss_weight_equals_single_device(mirrored_run):
    assert_annealed_run(mirrored_run)


@pytest.mark.skipif(BACKEND != "jax", reason="keras.distribution.DataParallel is JAX-only here")
def test_jax_data_parallel_variable_loss_weight_equals_single_device(data_parallel_run):
    """The variable lies on one device; kx's compiled step on two is given its value."""
    assert_annealed_run(data_parallel_run)


@pytest.mark.skipif(BACKEND != "jax", reason="keras.distribution.DataParallel is JAX-only here")
def test_jax_data_parallel_variable_weight_of_keras_own_loss_equals_single_device(
    data_parallel_run,
):
    """The same annealed variable weighing Keras' own loss (compile by output), given to the
    step on two devices as to kx's own losses (that one device weighs each batch with the
    assigned value: test_loss_weights.py)."""
    got, want = load(data_parallel_run, "stock_var_"), load(data_parallel_run, "stock_var_ref_")
    assert_same_run(got, want)


def assert_annealed_run(path):
    """distributed_worker's `train_annealed`: a callback sets the l1 weight, a variable made
    outside the distribution, to 0.1 * (batch + 1) before each of an epoch's 4 batches; the
    epoch logs hold the last one's."""
    got, want = load(path, "var_"), load(path, "var_ref_")
    assert_close(got[0]["l1_weight"], [0.4] * len(got[0]["l1_weight"]), rtol=1e-6)
    assert_same_run(got, want)


def assert_scheduled_run(path):
    """distributed_worker trains build("schedule"): 2 epochs of 4 steps, the l1 weight warming
    up over 6; the epoch logs hold the weight of each epoch's last step."""
    got, want = load(path, "sched_"), load(path, "sched_ref_")
    warmup = kx.schedules.LinearWarmup(6, value=0.6, start_value=0.1)
    assert_close(got[0]["l1_weight"], [float(warmup(3)), float(warmup(7))], rtol=1e-6)
    assert_same_run(got, want)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute is the TensorFlow backend's")
def test_multi_worker_mirrored_equals_single_process(tmp_path):
    import distributed_worker

    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    procs = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        procs.append(run_worker("multi_worker", tmp_path / f"w{index}.npz",
                                env={"TF_CONFIG": json.dumps(config)}))
    try:
        for proc in procs:
            finish(proc)
    finally:
        for proc in procs:
            proc.kill()
    reference = distributed_worker.train(distributed_worker.build())
    for index in range(2):
        assert_same_run(load(tmp_path / f"w{index}.npz"), reference)
    # A kx.DataGenerator: each worker loads only its half of every global batch (the two
    # halves cover every sample once per epoch) and training equals one process reading all.
    loaded = [np.load(tmp_path / f"w{index}.npz")["gen_loaded"] for index in range(2)]
    for epoch in range(distributed_worker.EPOCHS):
        ids = [np.sort(run[run[:, 0] == epoch, 1]) for run in loaded]
        assert [len(i) for i in ids] == [distributed_worker.N // 2] * 2
        np.testing.assert_array_equal(np.sort(np.concatenate(ids)), np.arange(distributed_worker.N))
    reference = distributed_worker.train_generator(distributed_worker.build())
    for index in range(2):
        assert_same_run(load(tmp_path / f"w{index}.npz", "gen_"), reference)


# -- bad input -------------------------------------------------------------------------------------


def test_dtype_policy_set_after_build_behaves_as_keras(dtype_policy):
    """Keras keeps the policy a layer was built with; kx must train exactly as keras.Model."""
    x, y, recon = data()
    kx_model, keras_model = two_output_model(), two_output_model(cls=keras.Model)
    dtype_policy("mixed_float16")
    kx_model.compile(optimizer=keras.optimizers.SGD(0.1), loss=kx_losses())
    keras_model.compile(optimizer=keras.optimizers.SGD(0.1),
                        loss={"logits": kx_losses()["ce"].loss, "recon": "mse"})
    a = kx_model.fit({"x": x}, {"logits": y, "recon": recon}, batch_size=16, shuffle=False,
                     epochs=1, verbose=0).history
    b = keras_model.fit({"x": x}, {"logits": y, "recon": recon}, batch_size=16, shuffle=False,
                        epochs=1, verbose=0).history
    assert kx_model.layers[1].compute_dtype == "float32"
    assert_close(a["loss"], b["loss"])


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute is the TensorFlow backend's")
def test_uneven_global_batch_under_mirrored_is_a_clear_error(mirrored_run):
    arrays = np.load(mirrored_run)
    assert str(arrays["uneven_keras"]) != "no error"  # stock Keras fails as well
    message = str(arrays["uneven_kx"])
    assert message.startswith("ValueError"), message
    assert "splits unevenly over the 2 replicas" in message and "[8, 7]" in message


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute is the TensorFlow backend's")
def test_model_built_outside_the_strategy_scope_behaves_as_keras(mirrored_run):
    arrays = np.load(mirrored_run)
    ours, theirs = str(arrays["outside_kx"]), str(arrays["outside_keras"])
    if not theirs.startswith("{"):  # Keras raised: kx raises the same error
        assert ours == theirs
    else:  # Keras trained (on the strategy the model was built under): same losses
        assert_close(json.loads(ours)["loss"], json.loads(theirs)["loss"], rtol=1e-5)
