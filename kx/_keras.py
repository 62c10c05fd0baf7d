"""The only place kx reaches into Keras internals (names outside the public `keras` API).

Keeping them here means a Keras upgrade that moves one of them breaks one import, not a search.
Each import and accessor says why kx needs it. `tests/test_public_api.py` fails when
another kx module imports `keras.src` or touches one of `PRIVATE_ATTRIBUTES`; the private trainer
hooks kx overrides are listed in `OVERRIDDEN_HOOKS`, and only `kx/model.py` and `kx/backend/`
may override them.
"""

import contextlib

import keras

# The output spec of a model / function on symbolic tensors: builds metrics before a JAX jit.
from keras.src.backend import compute_output_spec  # noqa: F401

# Keras masks on tensors: the losses that honour a mask read and keep it.
from keras.src.backend.common.masking import get_keras_mask, set_keras_mask  # noqa: F401

# Whether variables may change right now (Keras' stateless steps map them in a scope), and
# what the current scope maps a variable to (a JAX step's state).
from keras.src.backend.common.stateless_scope import get_stateless_scope, in_stateless_scope

# Per-replica loss scaling that `keras.losses.Loss.__call__` applies (a loss reduced by hand
# must do the same under tf.distribute) and its inverse for logging.
from keras.src.losses.loss import (  # noqa: F401
    scale_loss_for_distribution,
    unscale_loss_for_distribution,
)

# Keras' wrapper of a loss function into a `Loss` (arguments stored once, config derived).
from keras.src.losses.losses import LossFunctionWrapper  # noqa: F401

# The functional model class: a functional CustomModel derives from it (see model.py).
from keras.src.models.functional import Functional  # noqa: F401

# The backend trainer, whose __init__ keras.Model runs before Functional's.
from keras.src.models.model import Trainer as BackendTrainer  # noqa: F401

# Whether `Model(...)` arguments make a functional model.
from keras.src.models.model import functional_init_arguments  # noqa: F401

# The registry of custom names: a functional CustomModel's variant saves as its user's class.
from keras.src.saving.object_registration import GLOBAL_CUSTOM_NAMES  # noqa: F401

# The validation split of `fit` (the same slicing Keras applies to arrays).
from keras.src.trainers.data_adapters.array_slicing import (  # noqa: F401
    train_validation_split,
)

# Whether a TensorFlow graph is being traced (some losses check labels eagerly only).
from keras.src.utils.backend_utils import in_tf_graph  # noqa: F401

# Whether a JAX trace is in progress.
from keras.src.utils.jax_utils import is_in_jax_tracing_scope

# Private attributes of Keras objects that kx reads, each only through an accessor below.
PRIVATE_ATTRIBUTES = (
    "_outputs_struct",
    "_inputs_struct",
    "_aggregate_additional_loss",
    "_distribute_strategy",
    "_in_multi_worker_mode",
    "_tracker",
    "_get_state_sharding_spec",
    "_value",
    "_compile_loss",
    "_user_loss_weights",
    "_compile_config",
)

# The private attributes in which a `keras.metrics.Metric` holds its variables (a stateless copy
# of a kx metric leaves them out).
METRIC_STATE_ATTRIBUTES = ("_variables", "_tracker")

# Private trainer hooks that kx overrides (model.py, backend/): the symbolic build that Keras
# runs before the first step (kx builds its definitions' metrics there; TensorFlow's multi-worker
# strategy needs a fix in it, see backend/tensorflow.py), and TensorFlow's maker of the train and
# test functions (see backend/tensorflow.py).
OVERRIDDEN_HOOKS = ("_symbolic_build", "_maybe_symbolic_build", "_make_function")


def outputs_struct(model):
    """The structure (a dict for named outputs) a functional model returns, or `None`."""
    return getattr(model, "_outputs_struct", None)


def inputs_struct(model):
    """The structure (a dict for named inputs) a functional model takes, or `None`."""
    return getattr(model, "_inputs_struct", None)


def output_shapes(model):
    """`{output name: static shape}` of a built functional model; `{}` when unknown."""
    struct = outputs_struct(model)
    if isinstance(struct, dict):
        return {k: tuple(v.shape) for k, v in struct.items()}
    names = getattr(model, "output_names", None)
    outputs = getattr(model, "outputs", None)
    if not names or not outputs:
        return {}
    return {n: tuple(t.shape) for n, t in zip(names, outputs)}


def aggregate_additional_loss(model, loss):
    """A regularization / `add_loss` value as Keras' `compute_loss` adds it to the total."""
    return model._aggregate_additional_loss(loss)


def distribute_strategy(model):
    """The `tf.distribute` strategy the model was built under, or `None` (TensorFlow)."""
    return model._distribute_strategy


def in_multi_worker_mode(strategy):
    """Whether a MultiWorkerMirroredStrategy really spans several workers (TensorFlow)."""
    return strategy.extended._in_multi_worker_mode()


def can_update_state():
    """False inside a JAX trace outside Keras' StatelessScope (e.g. a user's
    `jax.value_and_grad`), where assigning a variable would leak a tracer."""
    return in_stateless_scope() or not is_in_jax_tracing_scope()


def mapped_in_scope(variable):
    """Whether the current StatelessScope maps `variable` to a value (in a JAX step: its
    state). Outside one, a traced read of a variable gets its value at trace time, or nothing
    while Keras' JAX `fit` holds the state."""
    scope = get_stateless_scope()
    return scope is not None and scope.get_current_value(variable) is not None


def reduce_step_logs(logs, strategy):
    """A TensorFlow step's logs (per replica under a strategy) reduced as Keras' TensorFlow
    trainer reduces them for `fit` and `evaluate` (its `reduce_per_replica`, "auto")."""
    from keras.src.backend.tensorflow.trainer import reduce_per_replica

    return reduce_per_replica(logs, strategy, reduction="auto")


def stored_value(variable):
    """A variable's stored value, without the scope and autocast checks of `.value` (about 3 us
    on JAX): to see, step by step, whether it was assigned (each assign stores a new array)."""
    return variable._value


@contextlib.contextmanager
def stored_values(pairs):
    """`(variable, value)` pairs: each variable stores `value` inside the block (a traced step
    reads it wherever it reads the variable outside a `StatelessScope` mapping), its own value
    again after."""
    saved = [(variable, variable._value) for variable, _ in pairs]
    try:
        for variable, value in pairs:
            variable._value = value
        yield
    finally:
        for variable, value in saved:
            variable._value = value


def step_counter(optimizer):
    """`(variable, divisor)`: the variable that counts `optimizer`'s train steps, and what
    `optimizer.iterations` divides it by. With `gradient_accumulation_steps`, Keras'
    `iterations` is a tensor (the count of updates: steps // accumulation steps), not a
    variable; a `LossScaleOptimizer` counts with its inner optimizer's."""
    inner = getattr(optimizer, "inner_optimizer", None)
    if inner is not None:
        return step_counter(inner)
    steps = optimizer.gradient_accumulation_steps
    return (optimizer._iterations, steps) if steps else (optimizer.iterations, 1)


class _ReadRecorder(keras.StatelessScope):
    """A `StatelessScope` that records the variables read in it (`Variable.value` asks the
    scope for each variable's current value)."""

    def __init__(self):
        super().__init__()
        self.read = {}

    def get_current_value(self, variable):
        self.read[id(variable)] = variable
        return super().get_current_value(variable)


def variables_read(fn, *args):
    """The `keras.Variable`s that calling `fn(*args)` eagerly reads, in order."""
    with _ReadRecorder() as scope:
        fn(*args)
    return list(scope.read.values())


def set_saved_compile_argument(model, name, value):
    """Makes `model.get_compile_config()` save `value` as `compile`'s argument `name` (Keras
    saves the arguments as given: `keras.Variable` loss weights fail on JAX and torch)."""
    model._compile_config.config[name] = value


def keras_loss_weight_variables(model):
    """The `keras.Variable`s among the `loss_weights` that Keras' own compiled loss applies
    (`compile` given Keras' `loss`, not kx definitions)."""
    weights = getattr(getattr(model, "_compile_loss", None), "_user_loss_weights", None)
    if weights is None:
        return []
    return [w for w in keras.tree.flatten(weights) if isinstance(w, keras.Variable)]


def jax_step_compiler():
    """What Keras' JAX trainer compiles its train and test steps with: `jax.jit`, or Flax's
    `nnx.jit` when Keras runs under Flax NNX."""
    from keras.src.backend.jax.trainer import jit

    return jit


def jax_replicated_sharding():
    """The sharding of a value held whole on every device of the current `keras.distribution`'s
    mesh (JAX)."""
    from jax.sharding import NamedSharding, PartitionSpec

    mesh = keras.distribution.distribution().device_mesh.backend_mesh
    return NamedSharding(mesh, PartitionSpec())


def jax_state_shardings(model):
    """`(trainable, non_trainable, optimizer, metrics)` shardings of a JAX model's state under a
    `keras.distribution`, as Keras' JAX trainer gives them to its jitted steps."""
    return model._get_state_sharding_spec()


def replace_tracked_attribute(layer, name, value):
    """`setattr(layer, name, value)`, tracked as Keras tracks attributes (a layer's variables and
    metrics become the model's; a tuple's items are tracked one by one), with the previous value
    (or its items) untracked. Keras locks the tracker of a built subclassed model
    (`Layer._tracker` is private); compile attaches state after build, as Functional models
    allow."""
    tracker = layer._tracker
    locked = tracker.locked
    tracker.unlock()
    try:
        old = getattr(layer, name, None)
        for item in old if isinstance(old, tuple) else () if old is None else (old,):
            tracker.untrack(item)
        setattr(layer, name, value)
    finally:
        if locked:
            tracker.lock()
