"""The tensorflow train step: class weights folded into the batch, then Keras' own step."""


class TrainStep:
    def train_step(self, data):
        return super().train_step(self._kx_fold_class_weights(data))
