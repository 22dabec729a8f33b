"""Adam with TensorFlow's fused update kernel (the trainer's three optimizers)."""

import keras
import tensorflow as tf
from keras import ops


def _handle(variable):
    """The resource handle of a Keras variable or of a tf.Variable (what Keras
    passes to `update_step` on the TensorFlow backend, per device under a
    distribution strategy)."""
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return variable.handle


@keras.saving.register_keras_serializable(package="faceswap_gan")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` whose dense update is one TensorFlow kernel per
    variable, `ResourceApplyAdam`, instead of Keras' eight separate tensor ops.

    The arithmetic is Keras Adam's (Kingma & Ba, 2015,
    https://arxiv.org/abs/1412.6980, with the "epsilon hat" of section 2): alpha =
    lr sqrt(1 - beta_2^t) / (1 - beta_1^t); m += (g - m)(1 - beta_1); v += (g^2 -
    v)(1 - beta_2); var -= alpha m / (sqrt(v) + epsilon), with t = iterations + 1,
    which is what TensorFlow's `ApplyAdam` kernel computes; updates equal Keras
    Adam's within float rounding (the kernel computes 1 - beta_2 in float32:
    0.99998713e-3 for beta_2 = 0.999, where Keras rounds the float64 1e-3, so the
    velocities differ by 1.3e-5 relative and the updates by about half that). The
    kernel reads each variable, gradient, m and v once and writes in place, where
    Keras' ops make a full-size temporary each: on the project's 2-core CPU one
    update of the standard model's 65.4 M generator weights took 39 ms instead of
    155 ms (3.9x; lite's 10.5 M: 3.0x), printed by `python
    benchmarks/optimizer_speed.py --capacity standard` (and `lite`). XLA compiles
    the kernel, as do GPUs and TPUs.

    The variables (iterations, learning rate, the momentums and velocities) are
    Keras Adam's, in the same order, so checkpoints of either load into the
    other. Sparse gradients (`tf.IndexedSlices`) and `amsgrad=True` take Keras'
    own update.

    Args: as `keras.optimizers.Adam`.
    """

    def update_step(self, gradient, variable, learning_rate):
        """One variable's update; `gradient` and `variable` have the same shape."""
        if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = ops.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]),
            beta1_power=ops.power(ops.cast(self.beta_1, dtype), step),
            beta2_power=ops.power(ops.cast(self.beta_2, dtype), step),
            lr=ops.cast(learning_rate, dtype),
            beta1=ops.cast(self.beta_1, dtype),
            beta2=ops.cast(self.beta_2, dtype),
            epsilon=ops.cast(self.epsilon, dtype),
            grad=ops.cast(gradient, dtype),
        )
