"""Re-exports of the segmentation losses: overlap losses (`overlap.py`) and Lovasz losses
(`lovasz.py`)."""

from kx.losses import lovasz, overlap
from kx.losses.lovasz import *  # noqa: F401,F403
from kx.losses.overlap import *  # noqa: F401,F403

__all__ = [*overlap.__all__, *lovasz.__all__]
