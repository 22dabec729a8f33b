"""Reflection padding."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="faceswap_gan")
class ReflectionPadding2D(keras.layers.Layer):
    """Pads H and W by mirroring the border (without repeating the edge pixel).

    Input shape `(batch, H, W, C)` -> output shape `(batch, H + 2p, W + 2p, C)`.

    Args:
        padding: int. Pixels added on each side, `p < min(H, W)`. Defaults to `1`.
    """

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, inputs):
        p = self.padding
        return ops.pad(inputs, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        p2 = 2 * self.padding
        return (b, None if h is None else h + p2, None if w is None else w + p2, c)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}
