"""kx.CustomModel (being written)."""

import keras


class CustomModel(keras.Model):
    pass
