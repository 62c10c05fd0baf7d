"""Keras code as users write it, unchanged on kx.CustomModel, against stock keras.Model:
custom train steps, compute_loss / compute_metrics, Keras 2's compiled_loss, save/load, lambdas,
metric and loss strings."""

import warnings

import _custom_steps
import keras
import numpy as np
import pytest
from conftest import BACKEND, assert_close
from keras import ops
from test_model import CE, N, data, kx_losses, same_weights, two_output_model

import kx


def one_output(cls, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,), name="x")
    h = keras.layers.Dense(8, activation="tanh")(inputs)
    return cls(inputs, keras.layers.Dense(3, name="logits")(h))


def history(model, *args, **kwargs):
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(float(logs["sw_mean"]))

    kwargs.setdefault("batch_size", N)
    h = model.fit(*args, epochs=2, shuffle=False, verbose=0, callbacks=[Record()], **kwargs)
    return h.history, seen


# -- custom train steps receive fit(class_weight=...) ----------------------------------------------


@pytest.mark.parametrize("step", ["calling_super", "manual"])
def test_custom_train_step_sees_the_class_weights_stock_keras_gives(step):
    """Stock keras.Model folds class weights into the step's sample weight; kx must as well."""
    x, y, _ = data()
    cw = {0: 50.0, 2: 0.5}
    make = getattr(_custom_steps, step)
    stock = one_output(make(keras.Model))
    stock.compile(optimizer=keras.optimizers.SGD(0.1), loss=CE)
    ours = same_weights(stock, one_output(make(kx.CustomModel)))
    ours.compile(optimizer=keras.optimizers.SGD(0.1),
                 loss={"ce": kx.LossDefinition("logits", "logits", CE)})
    want, want_sw = history(stock, x, y, class_weight=cw)
    got, got_sw = history(ours, x, y, class_weight=cw)
    expected = np.mean([cw.get(int(c), 1.0) for c in y])
    assert_close(want_sw, [expected] * 2)
    assert_close(got_sw, want_sw)
    assert_close(got["ce"], want["loss"])
    for a, b in zip(ours.get_weights(), stock.get_weights()):
        assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("step", ["calling_super", "manual"])
def test_custom_train_step_with_class_weights_from_any_source(step):
    """Class weights reach a custom step, once, for sources stock Keras refuses (a PyDataset
    of a two-output model), and equal the same weights given as per-target sample weights."""
    x, y, recon = data()
    cw = {0: 3.0, 2: 0.5}
    per_sample = np.array([cw.get(int(c), 1.0) for c in y], "float32")

    class Batches(keras.utils.PyDataset):
        def __init__(self, weights=None):
            super().__init__()
            self.weights = weights

        def __len__(self):
            return 3

        def __getitem__(self, i):
            s = slice(16 * i, 16 * (i + 1))
            batch = ({"x": x[s]}, {"logits": y[s], "recon": recon[s]})
            if self.weights is None:
                return batch
            return (*batch, {"logits": self.weights[s], "recon": np.ones(16, "float32")})

    def run(source, **kw):
        model = two_output_model(cls=getattr(_custom_steps, step)(kx.CustomModel))
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=kx_losses())
        h, sw = history(model, source, batch_size=None, **kw)
        return h, sw, model.get_weights()

    got, got_sw, got_w = run(Batches(), class_weight={"logits": cw})
    want, want_sw, want_w = run(Batches(per_sample))
    assert_close(got_sw, want_sw)
    for k in ("ce", "mse", "loss"):
        assert_close(got[k], want[k], err_msg=k)
    for a, b in zip(got_w, want_w):
        assert_close(a, b)


def test_custom_step_equals_kx_own_step():
    """The per-backend manual step (JAX: compute_loss inside jax.value_and_grad) trains and logs
    exactly as kx's own step, named losses and metrics included."""
    x, y, recon = data()
    X, Y = {"x": x}, {"logits": y, "recon": recon}
    metrics = lambda: {  # noqa: E731
        "acc": kx.MetricDefinition("logits", "logits", keras.metrics.SparseCategoricalAccuracy()),
        "gap": kx.ExtendedMetric(lambda it, out: ops.mean(ops.abs(out["recon"] - it["recon"]), -1)),
    }

    def run(cls):
        model = two_output_model(cls=cls)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=kx_losses(),
                      loss_weights={"mse": 0.5}, metrics=metrics())
        h = model.fit(X, Y, batch_size=16, epochs=2, shuffle=False, verbose=0,
                      class_weight={"logits": {0: 2.0}})
        return h.history, model.get_weights()

    want, want_w = run(kx.CustomModel)
    got, got_w = run(_custom_steps.manual(kx.CustomModel))
    assert set(want) <= set(got)
    for k in want:
        assert_close(got[k], want[k], rtol=1e-5, err_msg=k)
    for a, b in zip(got_w, want_w):
        assert_close(a, b)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="Keras 2's compiled_loss exists on TF only")
def test_keras2_compiled_loss_and_metrics_step_equals_own_step():
    import tensorflow as tf

    class Blog(kx.CustomModel):
        def train_step(self, data):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            with tf.GradientTape() as tape:
                y_pred = self(x, training=True)
                loss = self.compiled_loss(y, y_pred, sample_weight,
                                          regularization_losses=self.losses)
            grads = tape.gradient(loss, self.trainable_variables)
            self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
            self.compiled_metrics.update_state(y, y_pred, sample_weight)
            return self.get_metrics_result()  # logs keyed as compile named them

    x, y, recon = data()
    X, Y = {"x": x}, {"logits": y, "recon": recon}

    def run(cls):
        model = two_output_model(cls=cls)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=kx_losses(), metrics={
            "acc": kx.MetricDefinition("logits", "logits",
                                       keras.metrics.SparseCategoricalAccuracy())})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            h = model.fit(X, Y, batch_size=16, epochs=1, shuffle=False, verbose=0)
        return h.history, model.get_weights()

    want, want_w = run(kx.CustomModel)
    got, got_w = run(Blog)
    for k in ("ce", "mse", "acc"):
        assert_close(got[k], want[k], err_msg=k)
    for a, b in zip(got_w, want_w):
        assert_close(a, b)


def test_compiled_loss_names_compute_loss_when_an_extended_loss_needs_inputs():
    x, y, recon = data()
    model = two_output_model()
    model.compile(optimizer="sgd", loss={"l1": kx.ExtendedLoss(
        lambda it, out: ops.mean(ops.abs(out["recon"] - it["x"][:, :2]), -1))})
    x = ops.convert_to_tensor(x)
    y_pred = model({"x": x})
    with pytest.warns(UserWarning, match="compute_loss"):
        with pytest.raises(KeyError, match=r"ExtendedLoss 'l1'.*read 'x'.*compute_loss"):
            model.compiled_loss({"logits": y, "recon": recon}, y_pred)
    value = model.compute_loss({"x": x}, {"logits": y, "recon": recon}, y_pred)
    assert np.isfinite(ops.convert_to_numpy(value))


@pytest.mark.skipif(BACKEND == "tensorflow", reason="stock Keras has compiled_loss on TF only")
def test_compiled_loss_absent_as_in_stock_keras_without_definitions():
    for cls in (keras.Model, kx.CustomModel):
        model = one_output(cls)
        model.compile(optimizer="sgd", loss=CE)
        with pytest.raises(AttributeError):
            model.compiled_loss  # noqa: B018


# -- callbacks --------------------------------------------------------------------------------


def test_callbacks_read_the_weights_and_logs_of_every_batch_as_on_stock_keras():
    """A callback that reads the model during fit sees each batch's weights (on JAX, Keras writes
    the in-flight state back for it, from the state kx keeps untracked), and evaluate's batches
    too."""
    x, y, _ = data()
    stock = one_output(keras.Model)
    stock.compile(optimizer=keras.optimizers.SGD(0.1), loss=CE)
    ours = same_weights(stock, one_output(kx.CustomModel))
    ours.compile(optimizer=keras.optimizers.SGD(0.1),
                 loss={"ce": kx.LossDefinition("logits", "logits", CE)})

    def run(model):
        seen = []

        class Read(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                kernel = self.model.get_layer("logits").kernel
                seen.append((keras.ops.convert_to_numpy(kernel).copy(), logs["loss"]))

            def on_test_batch_end(self, batch, logs=None):
                seen.append(("test", logs["loss"]))

        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, callbacks=[Read()])
        model.evaluate(x, y, batch_size=16, verbose=0, callbacks=[Read()])
        return seen

    want, got = run(stock), run(ours)
    assert len(got) == len(want) > 4
    for (a, loss_a), (b, loss_b) in zip(got, want):
        assert_close(loss_a, loss_b, rtol=1e-5, atol=1e-6)
        if not isinstance(a, str):
            assert_close(a, b, rtol=1e-5, atol=1e-6)


def extra_logs(base):
    """`base` with a `train_step` that calls Keras' and logs more kinds of values: an int, a
    bfloat16 scalar, a vector and a nested dict."""

    def more(logs, x):
        first = ops.cast(x[0, 0], "float32")
        return {**logs, "count": ops.cast(ops.shape(x)[0], "int32"),
                "half": ops.cast(first, "bfloat16"), "vector": ops.stack([first, 2 * first]),
                "nested": {"inner": first + 1}}

    class ExtraLogs(base):
        def train_step(self, *args):
            x, _, _ = keras.utils.unpack_x_y_sample_weight(args[-1])
            out = super().train_step(*args)
            if BACKEND == "jax":
                return more(out[0], x), out[1]
            return more(out, x)

    return ExtraLogs


def test_logs_of_every_kind_reach_callbacks_history_and_on_batch_calls_as_on_stock_keras():
    """kx's compiled JAX steps return each dtype's scalar logs stacked in one array (one output
    and one transfer a step, not one per log); what callbacks, History, evaluate and
    `*_on_batch` receive equals stock keras.Model's, whatever the logs hold."""
    x, y, _ = data()

    def run(cls):
        model = same_weights(one_output(keras.Model), one_output(extra_logs(cls)))
        model.compile(optimizer=keras.optimizers.SGD(0.1),
                      metrics={"logits": ["accuracy"]} if cls is keras.Model else {
                          "accuracy": kx.MetricDefinition("logits", "logits", "accuracy")},
                      loss=CE if cls is keras.Model else {
                          "ce": kx.LossDefinition("logits", "logits", CE)})
        seen = []

        class Record(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                seen.append(dict(logs))

            def on_test_batch_end(self, batch, logs=None):
                seen.append(dict(logs))

        h = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0,
                      callbacks=[Record()])
        seen.append(model.evaluate(x, y, batch_size=16, verbose=0, callbacks=[Record()],
                                   return_dict=True))
        seen.append(model.train_on_batch(x[:16], y[:16], return_dict=True))
        seen.append(model.test_on_batch(x[16:32], y[16:32], return_dict=True))
        return h.history, seen

    want, want_seen = run(keras.Model)
    got, got_seen = run(kx.CustomModel)

    def same(a, b):  # kx also logs the loss "ce" by its name
        assert sorted(a) == sorted([*b, "ce"] if "loss" in b else b)
        for key in b:
            assert type(a[key]) is type(b[key]), (key, type(a[key]), type(b[key]))
            assert_close(np.asarray(a[key], "float64"), np.asarray(b[key], "float64"),
                         rtol=1e-5, atol=1e-6)

    assert sorted(want) == ["accuracy", "count", "half", "inner", "loss", "vector"]
    same(got, want)
    assert len(got_seen) == len(want_seen) > 2 * len(x) // 16
    for a, b in zip(got_seen, want_seen):
        same(a, b)


@pytest.mark.parametrize("steps_per_execution", [1, 3])
def test_data_of_unknown_length_trains_and_evaluates_as_on_stock_keras(steps_per_execution):
    """A tf.data pipeline of unknown length ends each epoch at its last batch: per-batch logs,
    epoch logs, evaluate, train_on_batch and test_on_batch equal stock keras.Model's (on
    TensorFlow kx's train/test functions return a step's logs as they are, without the Optional
    Keras wraps them in; the end of data is Keras' own)."""
    if BACKEND == "torch" and steps_per_execution > 1:
        pytest.skip("Keras' torch trainer refuses steps_per_execution > 1 (stock keras.Model too)")
    import tensorflow as tf

    x, y, _ = data()

    def batches():
        for i in range(0, len(x), 16):
            yield x[i:i + 16], y[i:i + 16]

    source = tf.data.Dataset.from_generator(batches, output_signature=(
        tf.TensorSpec((None, x.shape[1]), "float32"), tf.TensorSpec((None,), "int64")))
    assert source.cardinality() == tf.data.UNKNOWN_CARDINALITY

    def run(cls):
        model = one_output(cls)
        model.compile(optimizer=keras.optimizers.SGD(0.1), steps_per_execution=steps_per_execution,
                      loss=CE if cls is keras.Model else {
                          "ce": kx.LossDefinition("logits", "logits", CE)})
        seen = []

        class Record(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                seen.append(("train", batch, logs["loss"]))

            def on_test_batch_end(self, batch, logs=None):
                seen.append(("test", batch, logs["loss"]))

        with warnings.catch_warnings():  # Keras: the first epoch "ran out of data", as expected
            warnings.simplefilter("ignore")
            h = model.fit(source, epochs=2, verbose=0, callbacks=[Record()])
        evaluated = model.evaluate(source, verbose=0, callbacks=[Record()], return_dict=True)
        seen.append(evaluated["loss"])
        seen.append(model.train_on_batch(x[:16], y[:16], return_dict=True)["loss"])
        seen.append(model.test_on_batch(x[16:32], y[16:32], return_dict=True)["loss"])
        return h.history["loss"], seen

    want, want_seen = run(keras.Model)
    got, got_seen = run(kx.CustomModel)
    assert len(want) == 2
    assert len(got_seen) == len(want_seen) > 2 * len(x) // 16 // steps_per_execution
    assert_close(got, want, rtol=1e-5)
    for a, b in zip(got_seen, want_seen):
        if isinstance(b, tuple):
            assert a[:2] == b[:2]
            a, b = a[2], b[2]
        assert_close(a, b, rtol=1e-5, atol=1e-6)


# -- save and load ---------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="kx_tests")
def recon_gap(inputs_targets, outputs):
    return ops.mean(ops.abs(outputs["recon"] - inputs_targets["recon"]), axis=-1)


def test_every_definition_kind_round_trips_through_a_checkpoint(tmp_path):
    x, y, recon = data()
    X, Y = {"x": x}, {"logits": y, "recon": recon}
    model = two_output_model()
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss={**kx_losses(), "gap": kx.ExtendedLoss(recon_gap, sample_weight_target="recon"),
              "ce2": kx.LossDefinition("logits", "logits", "crossentropy")},
        loss_weights={"gap": 0.3},
        metrics={"acc": kx.MetricDefinition("logits", "logits", "accuracy"),
                 "gap_metric": kx.ExtendedMetric(recon_gap),
                 "scores": kx.MetricDefinition("logits", "logits",
                                               kx.metrics.ClassificationMetrics(
                                                   num_classes=3, from_logits=True))},
    )
    path = str(tmp_path / "best.keras")
    checkpoint = keras.callbacks.ModelCheckpoint(path)
    model.fit(X, Y, batch_size=16, epochs=1, verbose=0, callbacks=[checkpoint])
    loaded = keras.models.load_model(path)
    assert loaded.compiled and isinstance(loaded._kx.metrics["gap_metric"], kx.ExtendedMetric)
    a = model.evaluate(X, Y, batch_size=16, verbose=0, return_dict=True)
    b = loaded.evaluate(X, Y, batch_size=16, verbose=0, return_dict=True)
    assert a.keys() == b.keys()
    for k in a:
        assert_close(b[k], a[k], err_msg=k)


def test_extended_metric_config_round_trip():
    m = kx.ExtendedMetric(recon_gap, sample_weight_target="recon")
    back = kx.ExtendedMetric.from_config(m.get_config())
    assert isinstance(back, kx.ExtendedMetric) and back.fn is recon_gap
    assert back.sample_weight_target == "recon"


def test_unregistered_metric_class_is_named_in_the_save_warning(tmp_path):
    class Unregistered(kx.metrics.MultiMetric):
        pass

    x, y, recon = data()
    model = two_output_model()
    model.compile(optimizer="sgd", loss=kx_losses(), metrics={"m": kx.MetricDefinition(
        "logits", "logits", Unregistered([keras.metrics.SparseCategoricalAccuracy()]))})
    model.fit({"x": x}, {"logits": y, "recon": recon}, epochs=1, verbose=0)
    with pytest.warns(UserWarning, match="Register every custom") as record:
        model.save(str(tmp_path / "m.keras"))
    assert not any("lambda" in str(w.message) for w in record)


# -- lambdas and strings ---------------------------------------------------------------------------


def test_lambda_loss_definition_trains_and_leaves_later_models_alone():
    x, y, _ = data()
    model = one_output(kx.CustomModel)
    model.compile(optimizer="sgd", loss={"ce": kx.LossDefinition(
        "logits", "logits",
        lambda t, p: keras.losses.sparse_categorical_crossentropy(t, p, from_logits=True))})
    got = model.fit(x, y, batch_size=16, epochs=1, verbose=0).history["loss"]
    stock = one_output(keras.Model)
    stock.compile(optimizer="sgd", loss=CE)
    want = stock.fit(x, y, batch_size=16, epochs=1, verbose=0).history["loss"]
    assert_close(got, want)


@pytest.mark.parametrize("identifier", ["accuracy", "acc", "Accuracy"])
@pytest.mark.parametrize("form", ["sparse", "column", "one_hot", "binary", "batch_equals_classes"])
def test_accuracy_string_is_the_metric_keras_compile_picks(identifier, form):
    rng = np.random.default_rng(0)
    n, c = (3, 3) if form == "batch_equals_classes" else (40, 3)
    x = rng.normal(size=(n, 6)).astype("float32")
    labels = rng.integers(0, c, n)
    units = 1 if form == "binary" else c
    y = {
        "sparse": labels, "column": labels[:, None], "batch_equals_classes": labels,
        "one_hot": np.eye(c, dtype="float32")[labels], "binary": (labels > 0).astype("float32"),
    }[form]
    loss = {"one_hot": "categorical_crossentropy", "binary": "binary_crossentropy"}.get(
        form, "sparse_categorical_crossentropy")

    def model(cls):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((6,), name="x")
        activation = "sigmoid" if units == 1 else "softmax"
        return cls(inputs, keras.layers.Dense(units, activation=activation, name="p")(inputs))

    stock = model(keras.Model)
    stock.compile(optimizer="sgd", loss=loss, metrics=[identifier])
    ours = model(kx.CustomModel)
    ours.compile(optimizer="sgd", loss={"l": kx.LossDefinition("p", "p", loss)},
                 metrics={"acc": kx.MetricDefinition("p", "p", identifier)})
    want = stock.evaluate(x, y, verbose=0, return_dict=True)[identifier]
    got = ours.evaluate(x, y, verbose=0, return_dict=True)["acc"]
    assert_close(got, want)
    p = keras.ops.convert_to_numpy(stock(x))  # a NumPy reference: not labels == scores
    hits = (p[:, 0] > 0.5) == (labels > 0) if form == "binary" else p.argmax(-1) == labels
    assert_close(want, hits.mean())


def test_crossentropy_string_is_the_loss_keras_compile_picks():
    x, y, _ = data()
    stock = one_output(keras.Model)
    stock.compile(optimizer="sgd", loss="crossentropy")
    ours = same_weights(stock, one_output(kx.CustomModel))
    ours.compile(optimizer="sgd", loss={"ce": kx.LossDefinition("logits", "logits", "ce")})
    p = keras.ops.softmax(stock(x))  # probabilities, as "crossentropy" expects
    want = stock.compute_loss(x, y, p)
    got = ours.compute_loss(x, {"logits": y}, {"logits": p})
    assert_close(got, ops.convert_to_numpy(want))


def test_loss_or_metric_class_instead_of_instance_is_refused_at_construction():
    with pytest.raises(TypeError, match=r"not a class.*SparseCategoricalCrossentropy\(\.\.\.\)"):
        kx.LossDefinition("y", "p", keras.losses.SparseCategoricalCrossentropy)
    with pytest.raises(TypeError, match=r"not a class.*SparseCategoricalAccuracy\(\.\.\.\)"):
        kx.MetricDefinition("y", "p", keras.metrics.SparseCategoricalAccuracy)


def test_extended_loss_reading_a_missing_key_says_what_there_is():
    x, y, recon = data()
    model = two_output_model()
    model.compile(optimizer="sgd", loss={"bad": kx.ExtendedLoss(
        lambda it, out: ops.mean(it["image"], -1))})
    with pytest.raises(KeyError, match=r"ExtendedLoss 'bad'.*'image'.*\['logits', 'recon', 'x'\]"):
        model.fit({"x": x}, {"logits": y, "recon": recon}, epochs=1, verbose=0)


# -- class weights: one rule, no silent values -----------------------------------------------------


def test_class_weight_list_gets_a_readable_message():
    x, y, recon = data()
    model = two_output_model()
    model.compile(optimizer="sgd", loss=kx_losses())
    with pytest.raises(TypeError, match=r"Received: class_weight of type list$"):
        model.fit({"x": x}, {"logits": y, "recon": recon}, class_weight=[1.0, 2.0],
                  epochs=1, verbose=0)


def test_labels_outside_the_output_are_refused_with_class_weights():
    x, y, recon = data()
    model = two_output_model()
    model.compile(optimizer="sgd", loss=kx_losses())
    bad = y.copy()
    bad[5] = 7
    for cw in ({"logits": {0: 2.0}}, "balanced"):
        with pytest.raises(ValueError, match=r"hold the class 7; expected class ids in \[0, 3\)"):
            model.fit({"x": x}, {"logits": bad, "recon": recon}, class_weight=cw, epochs=1,
                      verbose=0)


def test_nan_or_negative_sample_weight_is_refused():
    x, y, recon = data()
    model = two_output_model()
    model.compile(optimizer="sgd", loss=kx_losses())
    for w, message in ((np.full(N, np.nan), "finite"), (-np.ones(N), ">= 0")):
        with pytest.raises(ValueError, match=message):
            model.fit({"x": x}, {"logits": y, "recon": recon}, sample_weight=w, epochs=1,
                      verbose=0)
        with pytest.raises(ValueError, match=message):
            kx.DataGenerator({"x": x}, {"logits": y, "recon": recon}, sample_weight=w)


def test_a_huge_class_id_costs_no_dense_table():
    from kx._class_weight import WeightTable, check_dict

    table = WeightTable(check_dict({0: 1.0, 10**8: 2.0}, "test", integer_ids=True))
    assert not table.dense and table.keys.nbytes + table.weights.nbytes < 64
    ids = np.array([0, 10**8, 5])
    assert_close(table.numpy(ids), [1.0, 2.0, 1.0])
    assert_close(table.tensor(ops.convert_to_tensor(ids)), [1.0, 2.0, 1.0])


SAME_RULE_CASES = [
    # (class_weight, labels 0..2, expected error or None)
    ({0: 3.0, 2: 0.5}, None),
    ({0: 1.0, 1: 1.0, 2: 1.0, 99: 2.0}, None),  # every class weighed; 99 never occurs: harmless
    ({0: 1.0, 99: 2.0}, r"names the classes \[99\], which never occur in the labels, and leaves "
                        r"out the classes \[1, 2\]"),
    ({0: float("nan")}, "expected every weight to be a finite number >= 0"),
    ({0: -1.0}, "expected every weight to be a finite number >= 0"),
    ({0: True}, "expected every weight to be a finite number >= 0"),
]


@pytest.mark.parametrize("class_weight, error", SAME_RULE_CASES)
def test_one_rule_for_class_weight_dicts_through_every_entry_point(class_weight, error):
    """fit, DataGenerator and sample_weights: the same weights or the same message."""
    x, y, recon = data()
    reference = np.array([class_weight.get(int(c), 1.0) for c in y], "float32")

    def via_sample_weights():
        return kx.sample_weights(y, class_weight)

    def via_generator():
        gen = kx.DataGenerator(x, y, batch_size=N, shuffle=False, class_weight=class_weight)
        return gen[0][2]

    def via_fit():
        seen = []

        class Probe(kx.CustomModel):
            def train_step(self, *args):
                seen.append(keras.utils.unpack_x_y_sample_weight(args[-1])[2])
                return super().train_step(*args)

        model = one_output(Probe)
        model.compile(optimizer="sgd", loss={"ce": kx.LossDefinition("logits", "logits", CE)},
                      run_eagerly=True)
        model.fit(x, y, batch_size=N, epochs=1, shuffle=False, verbose=0,
                  class_weight=class_weight)
        return seen[0]

    for entry in (via_sample_weights, via_generator, via_fit):
        if error is None:
            assert_close(entry(), reference, err_msg=entry.__name__)
        else:
            with pytest.raises(ValueError, match=error):
                entry()


def test_sample_weights_refuses_labels_outside_classes_and_mixed_label_kinds():
    with pytest.raises(ValueError, match=r"the labels hold the classes \[2\], which are not in"):
        kx.sample_weights([0, 0, 0, 1, 1, 2], {0: 1, 1: 2}, classes=[0, 1])
    with pytest.raises(TypeError, match="labels of one kind"):
        kx.class_weights([0, "a", 1, 1])


def test_class_ids_outside_the_output_are_refused_before_training():
    """Stock Keras on JAX trains silently on label 7 of 3 logits (a clipped read); kx raises on
    every backend, for y and for validation_data, and honours the loss's ignore_class."""
    x, y, recon = data()
    bad = y.copy()
    bad[5] = 7
    model = two_output_model()
    model.compile(optimizer="sgd", loss=kx_losses())
    with pytest.raises(ValueError, match=r"Target 'logits' of `y`.*class 7; expected class ids"):
        model.fit({"x": x}, {"logits": bad, "recon": recon}, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"of `validation_data`.*class 7"):
        model.fit({"x": x}, {"logits": y, "recon": recon}, epochs=1, verbose=0,
                  validation_data=({"x": x}, {"logits": bad, "recon": recon}))
    ignoring = two_output_model()
    ignoring.compile(optimizer="sgd", loss={"ce": kx.LossDefinition("logits", "logits",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1))})
    masked = y.copy()
    masked[5] = -1
    h = ignoring.fit({"x": x}, {"logits": masked}, epochs=1, verbose=0).history
    assert np.isfinite(h["loss"][0])
