"""CustomModel's companion hooks: export_graphs / export_all reload and predict the same."""

import keras
import numpy as np
import pytest

import kx
from kx import _export

BACKEND = keras.backend.backend()


@keras.saving.register_keras_serializable(package="tests_companions")
class AutoEncoder(kx.CustomModel):
    def export_graphs(self):
        encoder = keras.Model(self.input, self.get_layer("code").output, name="encoder")
        return {"default": self, "encoder": encoder}


def _trained(cls=AutoEncoder):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,), name="x")
    code = keras.layers.Dense(3, activation="tanh", name="code")(inputs)
    model = cls(inputs, {"recon": keras.layers.Dense(6, name="recon")(code)})
    model.compile("adam", loss={"mse": kx.LossDefinition("x", "recon", "mse")})
    model.fit({"x": x}, {"x": x}, epochs=1, batch_size=16, verbose=0)
    return model, x


def _serving_predict(path, x):
    """The exported artifact's prediction, through the serving runtime itself."""
    if BACKEND == "torch":
        import torch

        program = torch.export.load(str(path)).module()
        return keras.tree.map_structure(
            lambda t: t.detach().numpy(), program(torch.from_numpy(x)))
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))  # kept alive: `serve` reads its variables
    return keras.tree.map_structure(lambda t: t.numpy(), loaded.serve(x))


def _flat(value):
    return [np.asarray(v) for v in keras.tree.flatten(value)]


@pytest.mark.slow  # serving exports take seconds (JAX imports TensorFlow for jax2tf)
def test_every_graph_reloads_and_predicts_the_same(tmp_path):
    model, x = _trained()
    expected = {"default": model.predict(x, verbose=0),
                "encoder": model.export_graphs()["encoder"].predict(x, verbose=0)}
    written = model.export_all(tmp_path)
    assert sorted(written) == ["default", "encoder"]
    for name, files in written.items():
        reloaded = keras.models.load_model(files["keras"])
        for got, want in zip(_flat(reloaded.predict(x, verbose=0)), _flat(expected[name])):
            np.testing.assert_allclose(got, want, atol=1e-6)
        assert files["serving"] is not None, f"{BACKEND} exports for serving"
        for got, want in zip(_flat(_serving_predict(files["serving"], x)), _flat(expected[name])):
            np.testing.assert_allclose(got, want, atol=1e-6)
    default = keras.models.load_model(written["default"]["keras"])
    assert isinstance(default, AutoEncoder) and default.compiled


def test_default_graph_and_keras_files_only(tmp_path):
    model, x = _trained(kx.CustomModel)
    assert model.export_graphs() == {"default": model}
    written = model.export_all(tmp_path, serving=False)
    assert list(written) == ["default"] and written["default"]["serving"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["default.keras"]
    reloaded = keras.models.load_model(written["default"]["keras"])
    np.testing.assert_allclose(reloaded.predict(x, verbose=0)["recon"],
                               model.predict(x, verbose=0)["recon"], atol=1e-6)


def test_bad_export_graphs():
    model, _ = _trained()
    with pytest.raises(TypeError, match=r"export_graphs\(\)\['encoder'\] is a Dense"):
        _export.export_all({"encoder": model.get_layer("code")}, "unused")
    with pytest.raises(ValueError, match="file names"):
        _export.export_all({"a/b": model}, "unused")
    with pytest.raises(TypeError, match="non-empty dict"):
        _export.export_all({}, "unused")
