"""The only backend-specific code of kx: the `train_step` signature of each Keras trainer.

Each override folds `fit(class_weight=...)` into the batch's sample weights and hands the batch to
Keras' own step, which keeps everything Keras does (loss scaling for mixed precision, the unscaled
loss in the logs, distribution scaling, the JAX state tuple, `torch.no_grad` in evaluation). The
loss and metric assembly is backend-independent: `CustomModel.compute_loss` / `compute_metrics`.
`test_step` needs no override: class weights apply to training only, as in Keras.
"""

import keras

_backend = keras.backend.backend()
if _backend == "tensorflow":
    from kx.backend.tensorflow import TrainStep
elif _backend == "jax":
    from kx.backend.jax import TrainStep
elif _backend == "torch":
    from kx.backend.torch import TrainStep
else:
    raise ImportError(
        f"kx supports the tensorflow, jax and torch Keras backends. Received: {_backend!r}"
    )

__all__ = ["TrainStep"]
