"""Data pipelines for `fit`."""

__all__ = ["DataGenerator"]


class DataGenerator:  # replaced by the DataGenerator work stream
    pass
