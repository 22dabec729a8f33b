"""Small layers the face-api ports need that Keras does not ship.

Reference:
    - @vladmandic/face-api 1.7.15 (MIT), `src/faceRecognitionNet/scaleLayer.ts` and
      `residualLayer.ts`.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="faceswap_gan")
class ChannelAffine(keras.layers.Layer):
    """Per-channel `x * weights + biases` (dlib's `affine` layer, a frozen batch norm).

    Input shape `(batch, ..., C)` -> output shape `(batch, ..., C)`.
    """

    def build(self, input_shape):
        channels = input_shape[-1]
        self.gamma = self.add_weight(
            shape=(channels,), initializer="ones", name="weights"
        )
        self.beta = self.add_weight(
            shape=(channels,), initializer="zeros", name="biases"
        )

    def call(self, inputs):
        return inputs * self.gamma + self.beta


@keras.saving.register_keras_serializable(package="faceswap_gan")
class ZeroPadChannels(keras.layers.Layer):
    """Appends zero channels: `(batch, H, W, C)` -> `(batch, H, W, C + extra)`.

    face-api's `residualDown` widens the average-pooled shortcut this way.

    Args:
        extra: int. Number of zero channels appended after the input's channels.
    """

    def __init__(self, extra: int, **kwargs):
        super().__init__(**kwargs)
        self.extra = extra

    def call(self, inputs):
        return ops.pad(inputs, [[0, 0], [0, 0], [0, 0], [0, self.extra]])

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + self.extra)

    def get_config(self):
        return {**super().get_config(), "extra": self.extra}


@keras.saving.register_keras_serializable(package="faceswap_gan")
class SubtractMeanRGB(keras.layers.Layer):
    """face-api input normalisation: `(x - mean_rgb) / 255`, x RGB in `[0, 255]`.

    Input shape `(batch, H, W, 3)` float32 -> same shape, roughly in `[-0.5, 0.5]`.

    Args:
        mean_rgb: tuple of 3 floats. Per-channel mean in the 0..255 scale.
    """

    def __init__(self, mean_rgb=(122.782, 117.001, 104.298), **kwargs):
        super().__init__(**kwargs)
        self.mean_rgb = tuple(float(value) for value in mean_rgb)

    def call(self, inputs):
        mean = ops.convert_to_tensor(self.mean_rgb, dtype=inputs.dtype)  # (3,)
        return (inputs - mean) / 255.0

    def get_config(self):
        return {**super().get_config(), "mean_rgb": self.mean_rgb}
