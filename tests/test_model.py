"""kx.CustomModel against stock Keras, a NumPy reference of one SGD epoch, and bad input."""

import keras
import numpy as np
import pytest
from conftest import assert_close
from keras import ops

import kx

N, D, C = 48, 6, 3


def data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D)).astype("float32")
    y = rng.integers(0, C, size=n)
    recon = rng.normal(size=(n, 2)).astype("float32")
    return x, y, recon


def two_output_model(seed=0, cls=kx.CustomModel):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((D,), name="x")
    h = keras.layers.Dense(8, activation="tanh", name="hidden")(inputs)
    logits = keras.layers.Dense(C, name="logits")(h)
    recon = keras.layers.Dense(2, name="recon")(h)
    return cls({"x": inputs}, {"logits": logits, "recon": recon})


def same_weights(src, dst):
    dst.set_weights(src.get_weights())
    return dst


CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def kx_losses():
    return {
        "ce": kx.LossDefinition("logits", "logits", keras.losses.SparseCategoricalCrossentropy(
            from_logits=True)),
        "mse": kx.LossDefinition("recon", "recon", "mse"),
    }


def fit_history(model, x, y, **kwargs):
    kwargs.setdefault("epochs", 2)
    h = model.fit(x, y, batch_size=16, shuffle=False, verbose=0, **kwargs)
    return h.history


# -- equivalence with stock Keras ------------------------------------------------------------------


def test_stock_compile_and_definitions_match_keras_model():
    x, y, recon = data()
    X, Y = {"x": x}, {"logits": y, "recon": recon}
    w0 = two_output_model(cls=keras.Model).get_weights()

    def run(cls, loss, loss_weights, metrics):
        model = two_output_model(cls=cls)
        model.set_weights(w0)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss,
                      loss_weights=loss_weights, metrics=metrics)
        return model, fit_history(model, X, Y, validation_data=(X, Y))

    def stock_args():
        return ({"logits": CE, "recon": "mse"}, {"logits": 1.0, "recon": 0.5},
                {"logits": [keras.metrics.SparseCategoricalAccuracy(name="acc")]})

    _, ref = run(keras.Model, *stock_args())
    stock, got_stock = run(kx.CustomModel, *stock_args())
    assert stock._kx is None  # plain Keras arguments take Keras' own path
    assert got_stock.keys() == ref.keys()
    for k in ref:
        assert_close(got_stock[k], ref[k], err_msg=k)

    acc = kx.MetricDefinition("logits", "logits", keras.metrics.SparseCategoricalAccuracy())
    _, got = run(kx.CustomModel, kx_losses(), {"mse": 0.5}, {"acc": acc})
    mapping = {"loss": "loss", "ce": "logits_loss", "mse": "recon_loss", "acc": "logits_acc"}
    for prefix in ("", "val_"):
        for mine, theirs in mapping.items():
            assert_close(got[prefix + mine], ref[prefix + theirs], err_msg=prefix + mine)


def numpy_sgd_epoch(w, x, y, recon, batch, lr, mse_weight, cw):
    """One epoch of SGD on logits = x@W1+b1, recon = x@W2+b2 with CE + mse_weight * MSE.

    CE is class-weighted per sample and reduced as Keras' sum_over_batch_size.
    """
    w1, b1, w2, b2 = (a.astype("float64") for a in w)
    for s in range(0, len(x), batch):
        xb, yb, rb = x[s : s + batch], y[s : s + batch], recon[s : s + batch]
        n = len(xb)
        sw = np.array([cw.get(int(c), 1.0) for c in yb])
        z = xb @ w1 + b1
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        dz = (p - np.eye(C)[yb]) * sw[:, None] / n
        r = xb @ w2 + b2
        dr = mse_weight * 2 * (r - rb) / (n * rb.shape[1])
        w1, b1 = w1 - lr * xb.T @ dz, b1 - lr * dz.sum(0)
        w2, b2 = w2 - lr * xb.T @ dr, b2 - lr * dr.sum(0)
    return [w1, b1, w2, b2]


def test_one_epoch_equals_numpy_reference():
    """Every backend equals the same NumPy reference, so the backends equal each other."""
    x, y, recon = data()
    inputs = keras.Input((D,), name="x")
    model = kx.CustomModel(
        {"x": inputs},
        {"logits": keras.layers.Dense(C, name="logits")(inputs),
         "recon": keras.layers.Dense(2, name="recon")(inputs)},
    )
    rng = np.random.default_rng(7)
    w0 = [rng.normal(size=v.shape).astype("float32") * 0.3 for v in model.weights]
    model.set_weights(w0)
    model.compile(optimizer=keras.optimizers.SGD(0.2), loss=kx_losses(),
                  loss_weights={"mse": 0.5})
    cw = {0: 2.0, 2: 0.25}
    model.fit({"x": x}, {"logits": y, "recon": recon}, batch_size=16, shuffle=False,
              epochs=1, verbose=0, class_weight={"logits": cw})
    expected = numpy_sgd_epoch(w0, x, y, recon, 16, 0.2, 0.5, cw)
    names = [v.path for v in model.weights]
    for got, want, name in zip(model.get_weights(), expected, names):
        assert_close(got, want, rtol=1e-5, atol=1e-5, err_msg=name)


# -- losses, weights and logs ----------------------------------------------------------------------


def ce_per_sample(inputs_targets, outputs):
    return keras.losses.sparse_categorical_crossentropy(
        inputs_targets["logits"], outputs["logits"], from_logits=True
    )


def test_extended_loss_equals_loss_definition():
    x, y, recon = data()
    X, Y = {"x": x}, {"logits": y, "recon": recon}
    sw = np.linspace(0.1, 2.0, N).astype("float32")
    a = two_output_model()
    a.compile(optimizer="sgd", loss={"ce": kx.LossDefinition("logits", "logits", CE)})
    b = same_weights(a, two_output_model(seed=3))
    b.compile(optimizer="sgd", loss={"ce": kx.ExtendedLoss(ce_per_sample)})
    ha = fit_history(a, X, Y, sample_weight=sw)
    hb = fit_history(b, X, Y, sample_weight=sw)
    assert_close(hb["ce"], ha["ce"])
    assert_close(hb["loss"], ha["loss"])


def test_loss_weights_change_total_not_components():
    x, y, recon = data()
    X, Y = {"x": x}, {"logits": y, "recon": recon}
    model = two_output_model()
    w0 = model.get_weights()
    model.compile(optimizer="sgd", loss=kx_losses())
    logs1 = model.evaluate(X, Y, verbose=0, return_dict=True)
    model.set_weights(w0)
    model.compile(optimizer="sgd", loss=kx_losses(), loss_weights={"ce": 2.0, "mse": 0.25})
    logs2 = model.evaluate(X, Y, verbose=0, return_dict=True)
    assert_close(logs2["ce"], logs1["ce"])
    assert_close(logs2["mse"], logs1["mse"])
    assert_close(logs2["loss"], 2.0 * logs1["ce"] + 0.25 * logs1["mse"], rtol=1e-5)


def test_add_loss_and_regularization_are_in_the_total():
    x, y, recon = data()
    inputs = keras.Input((D,), name="x")
    dense = keras.layers.Dense(C, name="logits", kernel_regularizer=keras.regularizers.L2(0.1))
    logits = dense(inputs)
    model = kx.CustomModel({"x": inputs}, {"logits": logits})
    model.compile(optimizer="sgd", loss={"ce": kx.LossDefinition("logits", "logits", CE)})
    logs = model.evaluate({"x": x}, {"logits": y}, verbose=0, return_dict=True)
    l2 = 0.1 * np.sum(keras.ops.convert_to_numpy(dense.kernel) ** 2)
    assert_close(logs["loss"], logs["ce"] + l2, rtol=1e-5)


def test_class_weight_equals_per_target_sample_weight_and_multiplies():
    x, y, recon = data()
    X, Y = {"x": x}, {"logits": y, "recon": recon}
    cw = {0: 3.0, 1: 0.5}
    sw = np.linspace(0.5, 1.5, N).astype("float32")
    per_sample = np.array([cw.get(int(c), 1.0) for c in y], "float32")

    def run(**fit_kwargs):
        model = two_output_model()
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=kx_losses(),
                      metrics={"wacc": kx.MetricDefinition(
                          "logits", "logits", keras.metrics.SparseCategoricalAccuracy(),
                          weighted=True)})
        return fit_history(model, X, Y, **fit_kwargs)

    with_cw = run(class_weight={"logits": cw})
    with_sw = run(sample_weight={"logits": per_sample})
    for k in with_sw:
        assert_close(with_cw[k], with_sw[k], err_msg=k)
    both = run(class_weight={"logits": cw}, sample_weight=sw)
    product = run(sample_weight={"logits": per_sample * sw, "recon": sw})
    for k in product:
        assert_close(both[k], product[k], err_msg=k)


def sources(x, y, recon, sw=None):
    """The same three batches as a PyDataset, a generator, tf.data and a torch DataLoader."""
    tf = pytest.importorskip("tensorflow")
    torch = pytest.importorskip("torch")
    targets = {"logits": y, "recon": recon}
    weights = None if sw is None else {"logits": sw, "recon": np.ones(N, "float32")}

    def batch(s):
        out = ({"x": x[s]}, {k: v[s] for k, v in targets.items()})
        return out if weights is None else (*out, {k: v[s] for k, v in weights.items()})

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return batch(slice(16 * i, 16 * (i + 1)))

    def generator():
        while True:
            for i in range(3):
                yield Batches()[i]

    class Items(torch.utils.data.Dataset):
        def __len__(self):
            return N

        def __getitem__(self, i):
            return batch(i)

    items = ({"x": x}, targets) if weights is None else ({"x": x}, targets, weights)
    return {
        "PyDataset": (Batches(), {}),
        "generator": (generator(), {"steps_per_epoch": 3}),
        "tf.data": (tf.data.Dataset.from_tensor_slices(items).batch(16), {}),
        "DataLoader": (torch.utils.data.DataLoader(Items(), batch_size=16), {}),
    }


def test_class_weight_with_every_data_source():
    """Class weights equal the per-target sample weights the same source could carry."""
    x, y, recon = data()
    cw = {0: 3.0, 2: 0.5}
    per_sample = np.array([cw.get(int(c), 1.0) for c in y], "float32")

    def fit(source, kwargs, **fit_kwargs):
        model = two_output_model()
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=kx_losses())
        return model.fit(source, epochs=1, verbose=0, **kwargs, **fit_kwargs).history

    plain = sources(x, y, recon)
    weighted = sources(x, y, recon, per_sample)
    for name in plain:
        # Without arrays kx cannot see which target holds class labels: key by target name.
        got = fit(*plain[name], class_weight={"logits": cw})
        want = fit(*weighted[name])
        for k in want:
            assert_close(got[k], want[k], err_msg=f"{name}: {k}")


def test_balanced_class_weight_equals_sklearn_on_training_split():
    from sklearn.utils.class_weight import compute_class_weight

    x, y, recon = data()
    y = np.where(np.arange(N) % 4 == 0, 2, y % 2)  # imbalanced
    split = int(np.floor(N * 0.75))
    classes = np.unique(y[:split])
    expected = dict(zip(classes, compute_class_weight("balanced", classes=classes, y=y[:split])))

    def run(**kw):
        model = two_output_model()
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=kx_losses())
        return fit_history(model, {"x": x}, {"logits": y, "recon": recon},
                           validation_split=0.25, **kw)

    balanced = run(class_weight="balanced")  # "recon" holds floats: not a classification target
    explicit = run(class_weight={"logits": expected})
    for k in explicit:
        assert_close(balanced[k], explicit[k], err_msg=k)


def test_one_hot_and_per_pixel_class_weights():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=(8, 4, 4))
    x = rng.normal(size=(8, 4, 4, 2)).astype("float32")
    cw = {0: 0.2, 1: 1.0, 2: 5.0}
    pixel_weights = np.vectorize(cw.get)(labels).astype("float32")

    def run(y, loss, **kw):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((4, 4, 2), name="img")
        out = keras.layers.Conv2D(3, 1, name="seg")(inputs)
        model = kx.CustomModel(inputs, out)
        model.compile(optimizer=keras.optimizers.SGD(0.1),
                      loss={"seg": kx.LossDefinition("seg", "seg", loss)})
        return model.fit(x, y, batch_size=4, shuffle=False, epochs=1, verbose=0, **kw).history

    sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    dense = keras.losses.CategoricalCrossentropy(from_logits=True)
    ref = run(labels, sparse, sample_weight=pixel_weights)
    got_sparse = run(labels, sparse, class_weight=cw)
    got_one_hot = run(np.eye(3, dtype="float32")[labels], dense, class_weight=cw)
    assert_close(got_sparse["loss"], ref["loss"])
    assert_close(got_one_hot["loss"], ref["loss"])


# -- save / load -----------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="kx_tests")
def mean_abs_recon(inputs_targets, outputs):
    return ops.mean(ops.abs(outputs["recon"] - inputs_targets["recon"]), axis=-1)


def test_save_load_restores_compile_state_and_continues_identically(tmp_path):
    x, y, recon = data()
    X, Y = {"x": x}, {"logits": y, "recon": recon}
    model = two_output_model()
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss={**kx_losses(), "l1": kx.ExtendedLoss(mean_abs_recon)},
        loss_weights={"l1": 0.3},
        metrics={"acc": kx.MetricDefinition("logits", "logits",
                                            keras.metrics.SparseCategoricalAccuracy())},
    )
    fit_history(model, X, Y, epochs=1)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, kx.CustomModel) and loaded._kx is not None
    assert loaded._kx.loss_weights == {"l1": 0.3}
    a = fit_history(model, X, Y, epochs=1)
    b = fit_history(loaded, X, Y, epochs=1)
    assert a.keys() == b.keys()
    for k in a:
        assert_close(b[k], a[k], err_msg=k)


def test_lambda_extended_loss_saves_weights_and_warns(tmp_path):
    x, y, recon = data()
    model = two_output_model()
    model.compile(optimizer="sgd", loss={"l": kx.ExtendedLoss(lambda it, out: ops.mean(
        ops.square(out["recon"] - it["recon"]), -1))})
    model.fit({"x": x}, {"logits": y, "recon": recon}, epochs=1, verbose=0)
    path = str(tmp_path / "m.keras")
    with pytest.warns(UserWarning, match="compile state .* cannot be saved"):
        model.save(path)
    loaded = keras.models.load_model(path)
    assert not loaded.compiled
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


# -- subclassed models and plain tensors -----------------------------------------------------------


class Net(kx.CustomModel):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(C)

    def call(self, x):
        logits = self.dense(x)
        return {"logits": logits, "class": ops.argmax(logits, -1)}


def test_subclassed_model_with_plain_tensor_inputs():
    x, y, _ = data()
    model = Net()
    model.compile(
        optimizer="adam",
        loss={"ce": kx.LossDefinition("label", "logits", CE)},
        metrics={"acc": kx.MetricDefinition("label", "class", keras.metrics.Accuracy()),
                 "hit": kx.ExtendedMetric(lambda it, out: ops.cast(
                     ops.equal(ops.cast(it["label"], "int32"),
                               ops.cast(out["class"], "int32")), "float32"))},
    )
    h = model.fit(x, {"label": y}, epochs=1, verbose=0, batch_size=16).history
    assert set(h) == {"loss", "ce", "acc", "hit"}
    assert_close(h["acc"], h["hit"])  # both are the epoch's accuracy


def test_dict_metric_results_are_prefixed_by_key():
    class TwoValues(keras.metrics.Metric):
        def __init__(self, name="two", **kw):
            super().__init__(name=name, **kw)
            self.total = self.add_variable((), initializer="zeros", name="total")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.total.assign_add(ops.cast(ops.shape(y_pred)[0], "float32"))

        def result(self):
            total = ops.convert_to_tensor(self.total)
            return {"count": total, "half": total / 2}

    x, y, _ = data()
    model = Net()
    model.compile(optimizer="sgd", loss={"ce": kx.LossDefinition("label", "logits", CE)},
                  metrics={"seen": kx.MetricDefinition("label", "logits", TwoValues())})
    logs = model.evaluate(x, {"label": y}, batch_size=16, verbose=0, return_dict=True)
    assert logs["seen_count"] == N and logs["seen_half"] == N / 2


# -- bad input -------------------------------------------------------------------------------------


def compiled(loss, metrics=None, loss_weights=None):
    model = two_output_model()
    model.compile(optimizer="sgd", loss=loss, metrics=metrics, loss_weights=loss_weights)
    return model


def test_unknown_output_name_lists_outputs():
    with pytest.raises(ValueError, match=r"one of \['logits', 'recon'\].*output='logit'"):
        compiled({"ce": kx.LossDefinition("logits", "logit", CE)})


def test_unknown_target_name_lists_targets():
    x, y, recon = data()
    model = compiled({"ce": kx.LossDefinition("label", "logits", CE)})
    with pytest.raises(ValueError, match=r"LossDefinition 'ce'.*\['logits', 'recon'\].*'label'"):
        model.fit({"x": x}, {"logits": y, "recon": recon}, epochs=1, verbose=0)


def test_duplicate_keys_and_unknown_loss_weight():
    acc = kx.MetricDefinition("logits", "logits", keras.metrics.SparseCategoricalAccuracy())
    with pytest.raises(ValueError, match="'ce' names both a loss and a metric"):
        compiled(kx_losses() | {"ce": kx_losses()["ce"]}, metrics={"ce": acc})
    with pytest.raises(ValueError, match=r"`loss_weights` names 'cee'.*\['ce', 'mse'\]"):
        compiled(kx_losses(), loss_weights={"cee": 2.0})
    with pytest.raises(ValueError, match="reserved"):
        compiled({"loss": kx_losses()["ce"]})
    model = two_output_model()
    with pytest.raises(ValueError, match="metric key 'acc' is used twice"):
        model.compile(optimizer="sgd", loss=kx_losses(), metrics={"acc": acc},
                      weighted_metrics={"acc": acc})


def test_extended_loss_bad_returns():
    x, y, recon = data()
    X, Y = {"x": x}, {"logits": y, "recon": recon}
    wrong_shape = compiled({"l": kx.ExtendedLoss(lambda it, out: out["recon"])})
    with pytest.raises(ValueError, match=r"ExtendedLoss 'l'.*one value per sample.*\(16, 2\)"):
        wrong_shape.fit(X, Y, batch_size=16, epochs=1, verbose=0)
    ints = compiled({"l": kx.ExtendedLoss(lambda it, out: ops.argmax(out["logits"], -1))})
    with pytest.raises(TypeError, match="ExtendedLoss 'l'.*float values.*int"):
        ints.fit(X, Y, batch_size=16, epochs=1, verbose=0)


def test_class_weight_bad_input():
    x, y, recon = data()
    X, Y = {"x": x}, {"logits": y, "recon": recon}
    model = compiled(kx_losses())
    with pytest.raises(ValueError, match="class 'cat' is not a valid label"):
        model.fit(X, Y, class_weight={"logits": {"cat": 2.0}}, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="class -1 is not a valid label"):
        model.fit(X, Y, class_weight={-1: 2.0}, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="names the targets \\['label'\\]"):
        model.fit(X, Y, class_weight={"label": {0: 2.0}}, epochs=1, verbose=0)

    def gen():
        while True:
            yield X, Y

    with pytest.raises(ValueError, match=r"'balanced' needs the training labels.*kx.class_weights"):
        model.fit(gen(), steps_per_epoch=1, class_weight="balanced", epochs=1, verbose=0)


def test_lazily_built_keras_metric():
    """F1Score creates its variables on first use; under JAX that must happen before the jit."""
    x, y, _ = data()
    model = Net()
    cce = keras.losses.CategoricalCrossentropy(from_logits=True)
    model.compile(optimizer="sgd", loss={"ce": kx.LossDefinition("label", "logits", cce)},
                  metrics={"f1": kx.MetricDefinition("label", "logits",
                                                     keras.metrics.F1Score(average="macro"))})
    h = model.fit(x, {"label": np.eye(C, dtype="float32")[y]}, epochs=1, verbose=0)
    assert "f1" in h.history


def test_class_weights_do_not_leak_into_later_training():
    x, y, recon = data()
    X, Y = {"x": x}, {"logits": y, "recon": recon}
    model = two_output_model()
    w0 = model.get_weights()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=kx_losses())
    model.fit(X, Y, class_weight={"logits": {0: 5.0}}, epochs=1, verbose=0)
    model.set_weights(w0)
    after_weighted = model.train_on_batch(X, Y, return_dict=True)
    model.set_weights(w0)
    model.fit(X, Y, epochs=1, verbose=0, batch_size=N)  # a fit without class weights
    model.set_weights(w0)
    after_plain = model.train_on_batch(X, Y, return_dict=True)
    assert_close(after_weighted["loss"], after_plain["loss"])


def test_balanced_class_weight_on_binary_masks():
    """A 0/1 mask of rank 3 is class ids (one weight per pixel), not multi-label rows."""
    rng = np.random.default_rng(0)
    masks = (rng.random((16, 6, 6)) < 0.2).astype("int32")
    x = rng.normal(size=(16, 6, 6, 1)).astype("float32")
    counts = np.bincount(masks.ravel())
    expected = {c: masks.size / (2 * counts[c]) for c in (0, 1)}  # sklearn's "balanced"

    def run(**kw):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((6, 6, 1), name="img")
        model = kx.CustomModel(inputs, keras.layers.Conv2D(2, 1, name="seg")(inputs))
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss={"seg": kx.LossDefinition(
            "seg", "seg", keras.losses.SparseCategoricalCrossentropy(from_logits=True))})
        return model.fit(x, masks, batch_size=8, shuffle=False, epochs=1, verbose=0, **kw).history

    assert_close(run(class_weight="balanced")["loss"], run(class_weight=expected)["loss"])


def test_python_metric_definition_runs_on_validation_set():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 4)).astype("float32")
    y = (x[:, 0] + 0.3 * rng.normal(size=80) > 0).astype("int32")
    inputs = keras.Input((4,), name="x")
    model = kx.CustomModel(inputs, {"p": keras.layers.Dense(1, activation="sigmoid")(inputs)})
    model.compile(
        optimizer="adam",
        loss={"bce": kx.LossDefinition("label", "p", "binary_crossentropy")},
        metrics={"auc": kx.MetricDefinition("label", "p", kx.metrics.RocAuc())},
    )
    stop = keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=5)
    h = model.fit(x, {"label": y}, validation_split=0.25, epochs=2, verbose=0, callbacks=[stop])
    assert "auc" not in h.history and len(h.history["val_auc"]) == 2
    p = model.predict(x[60:], verbose=0)["p"]
    assert_close(h.history["val_auc"][-1], roc_auc_score(y[60:], p[:, 0]), rtol=1e-6)
    with pytest.warns(UserWarning, match=r"validation-only metrics \['auc'\] are not computed"):
        model.fit(x, {"label": y}, epochs=1, verbose=0)


def test_single_loss_log_equals_total_and_is_epoch_averaged():
    """With one unweighted loss and no regularization, the loss is the total in every log."""
    x, y, _ = data()
    model = Net()
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss={"ce": kx.LossDefinition("label", "logits", CE)})
    h = model.fit(x, {"label": y}, batch_size=16, epochs=2, verbose=0,
                  validation_data=(x, {"label": y})).history
    assert_close(h["ce"], h["loss"])
    assert_close(h["val_ce"], h["val_loss"])
    ref = Net()
    ref(x[:1])
    ref.set_weights(model.get_weights())
    ref.compile(optimizer="sgd", loss={"ce": kx.LossDefinition("label", "logits", CE)},
                loss_weights={"ce": 2.0})  # weighted: a tracker of its own
    logs = ref.evaluate(x, {"label": y}, batch_size=16, verbose=0, return_dict=True)
    assert_close(logs["loss"], 2.0 * logs["ce"], rtol=1e-5)
