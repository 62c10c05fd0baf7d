"""Naming of inputs, targets and outputs: everything a definition addresses becomes a flat dict.

A dict stays as it is; a plain tensor is named after the model's single input/output; a list or
tuple is named positionally after the model's inputs/outputs.
"""

from kx import _keras

DEFAULT_INPUT_NAME = "input"
DEFAULT_OUTPUT_NAME = "output"


def output_names(model):
    """Names of the model's outputs, or `None` when unknown (a subclassed model before a call)."""
    struct = _keras.outputs_struct(model)
    if isinstance(struct, dict):
        return list(struct)
    names = getattr(model, "output_names", None)
    return list(names) if names else None


def input_names(model):
    """Names of the model's inputs, or `None` when unknown (a subclassed model)."""
    struct = _keras.inputs_struct(model)
    if isinstance(struct, dict):
        return list(struct)
    inputs = getattr(model, "inputs", None)
    if inputs:
        return [t.name for t in inputs]
    return None


def as_named(value, names, kind, default_name):
    """Returns `value` as a flat dict of tensors keyed by name.

    Args:
        value: a dict, a list/tuple, a single tensor, or `None`.
        names: the model's names for this structure (`None` when unknown).
        kind: "inputs", "targets" or "outputs", for messages.
        default_name: the name of a single tensor when `names` is unknown.
    """
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, (list, tuple)):
        if names is None or len(names) != len(value):
            raise ValueError(
                f"Cannot name the {len(value)} {kind} given as a {type(value).__name__}: the model "
                f"has {'no known names' if names is None else f'the names {names}'}. Pass the "
                f"{kind} as a dict keyed by name instead."
            )
        return dict(zip(names, value))
    if names and len(names) == 1:
        return {names[0]: value}
    if names and len(names) > 1:
        raise ValueError(
            f"Received a single tensor as {kind}, but the model has several: {names}. Pass the "
            f"{kind} as a dict keyed by those names."
        )
    return {default_name: value}


def named_inputs(model, x):
    return as_named(x, input_names(model), "inputs", DEFAULT_INPUT_NAME)


def named_outputs(model, y_pred):
    return as_named(y_pred, output_names(model), "outputs", DEFAULT_OUTPUT_NAME)


def named_targets(model, y):
    """Targets: a plain `y` is named after the model's single output, as Keras pairs them."""
    return as_named(y, output_names(model), "targets", DEFAULT_OUTPUT_NAME)
