"""The only place kx reaches into Keras internals (names outside the public `keras` API).

Keeping them here means a Keras upgrade that moves one of them breaks one import, not a search.
"""

from keras.src.backend import compute_output_spec  # noqa: F401,E402
from keras.src.backend.common.masking import get_keras_mask, set_keras_mask  # noqa: F401,E402
from keras.src.losses.loss import (  # noqa: F401
    scale_loss_for_distribution,
    unscale_loss_for_distribution,
)
from keras.src.losses.losses import LossFunctionWrapper  # noqa: F401,E402
from keras.src.models.functional import Functional  # noqa: F401,E402
from keras.src.models.model import Trainer as BackendTrainer  # noqa: F401,E402
from keras.src.models.model import functional_init_arguments  # noqa: F401,E402
from keras.src.saving.object_registration import GLOBAL_CUSTOM_NAMES  # noqa: F401,E402
from keras.src.trainers.data_adapters.array_slicing import (  # noqa: F401
    train_validation_split,
)
from keras.src.utils.backend_utils import in_tf_graph  # noqa: F401,E402
from keras.src.utils.jax_utils import is_in_jax_tracing_scope  # noqa: F401,E402
from keras.src.utils.python_utils import pythonify_logs  # noqa: F401


def replace_tracked_attribute(layer, name, value):
    """`setattr(layer, name, value)`, tracked as Keras tracks attributes (a layer's variables and
    metrics become the model's), with the previous value untracked. Keras locks the tracker of a
    built subclassed model (`Layer._tracker` is private); compile attaches state after build,
    as Functional models allow."""
    tracker = layer._tracker
    locked = tracker.locked
    tracker.unlock()
    try:
        old = getattr(layer, name, None)
        if old is not None:
            tracker.untrack(old)
        setattr(layer, name, value)
    finally:
        if locked:
            tracker.lock()
