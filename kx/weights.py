"""Class and sample weights."""

__all__ = ["class_weights", "sample_weights"]


def class_weights(y, method="balanced", **kwargs):  # replaced by the weights work stream
    raise NotImplementedError


def sample_weights(y, class_weight="balanced", **kwargs):  # replaced by the weights work stream
    raise NotImplementedError
