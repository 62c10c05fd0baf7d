"""The torch train step: class weights folded into the batch, then Keras' own step."""


class TrainStep:
    def train_step(self, data):
        return super().train_step(self._kx_fold_class_weights(data))


def count_ids(ids, num_ids, weights=None):
    """Per-id counts (sums of `weights` when given) of flat ids in [0, num_ids).

    Keras' torch `segment_sum` goes through `repeat_interleave` and a float round trip;
    `torch.bincount` is one native pass.
    """
    import torch

    counts = torch.bincount(ids, weights=weights, minlength=num_ids)
    return counts.to(torch.int32 if weights is None else weights.dtype)
