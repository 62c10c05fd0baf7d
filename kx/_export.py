"""Writing several graphs of a model: `.keras` files and `model.export`'s serving artifacts."""

import importlib.util
from pathlib import Path

import keras

from kx import _files


def serving_format():
    """`(format, suffix)` of `model.export` on this backend, or `None` where it cannot export."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return "tf_saved_model", ""
    if backend == "jax":  # through jax2tf, which needs TensorFlow
        return ("tf_saved_model", "") if importlib.util.find_spec("tensorflow") else None
    if backend == "torch":
        return "torch", ".pt2"
    return None


def export_all(graphs, directory, serving=True):
    """Writes `{name: model}` as `<name>.keras` plus the backend's serving artifact."""
    if not isinstance(graphs, dict) or not graphs:
        raise TypeError(
            "export_all: expected export_graphs() to return a non-empty dict {name: keras.Model}. "
            f"Received: {graphs!r}"
        )
    for name, graph in graphs.items():
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise ValueError(
                f"export_all: expected graph names usable as file names. Received: {name!r}"
            )
        if not isinstance(graph, keras.Model):
            raise TypeError(
                f"export_all: export_graphs()[{name!r}] is a {type(graph).__name__}; expected a "
                "keras.Model."
            )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    serving = serving_format() if serving else None
    written = {}
    for name, graph in graphs.items():
        keras_path = directory / f"{name}.keras"
        _files.save_model(graph, keras_path)
        serving_path = None
        if serving is not None:
            serving_path = directory / f"{name}{serving[1]}"
            kwargs = _torch_batch_dim(graph) if serving[0] == "torch" else {}
            graph.export(str(serving_path), format=serving[0], verbose=False, **kwargs)
        written[name] = {"keras": keras_path, "serving": serving_path}
    return written


def _torch_batch_dim(graph):
    """`torch.export` fixes every dimension it is not told is dynamic: free the batch one."""
    import torch

    try:
        inputs = graph.input  # the structure the model is called with (functional models)
    except (AttributeError, ValueError):
        return {}  # a subclassed model: Keras' own signature
    batch = torch.export.Dim("batch")
    return {"dynamic_shapes": [(keras.tree.map_structure(lambda _: {0: batch}, inputs),)]}
