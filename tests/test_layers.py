"""Layer contracts and independent references."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from faceswap_gan.config import NORMS
from faceswap_gan.layers import (
    ICNR,
    HybridNormalization,
    PixelShuffle,
    ReflectionPadding2D,
    SelfAttention2D,
    normalization,
    self_attention,
)
from faceswap_gan.layers.self_attention import attention, attention_autodiff


def assert_layer_contract(cls, kwargs, input_shape, expected_output_shape):
    """get_config -> from_config (JSON), symbolic and eager shapes, serialisation."""
    layer = cls(**kwargs)
    config = json.loads(json.dumps(layer.get_config()))
    assert cls.from_config(config).get_config() == layer.get_config()
    symbolic = layer(keras.Input(input_shape[1:], batch_size=input_shape[0]))
    assert tuple(symbolic.shape) == expected_output_shape
    x = np.random.default_rng(0).normal(size=input_shape).astype("float32")
    out = keras.ops.convert_to_numpy(layer(x))
    assert out.shape == expected_output_shape and out.dtype == np.float32
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(restored) is cls
    return layer, x, out


def test_pixel_shuffle_contract():
    assert_layer_contract(PixelShuffle, {"scale": 2}, (2, 4, 4, 32), (2, 8, 8, 8))


def test_pixel_shuffle_equals_depth_to_space():
    x = np.random.default_rng(1).normal(size=(2, 5, 3, 36)).astype("float32")
    for scale in (2, 3):
        ours = keras.ops.convert_to_numpy(PixelShuffle(scale)(x))
        np.testing.assert_array_equal(ours, tf.nn.depth_to_space(x, scale).numpy())


def test_icnr_conv_plus_shuffle_is_nearest_upsampling():
    """ICNR kernel, zero bias: conv + shuffle == nearest upsampling of a conv."""
    kernel = keras.ops.convert_to_numpy(ICNR(scale=2, seed=3)((3, 3, 4, 8 * 4)))
    x = np.random.default_rng(2).normal(size=(1, 6, 6, 4)).astype("float32")
    conv = tf.nn.conv2d(x, kernel, 1, "SAME")
    shuffled = tf.nn.depth_to_space(conv, 2).numpy()
    sub = tf.nn.conv2d(x, kernel[..., :8], 1, "SAME").numpy()
    nearest = sub.repeat(2, axis=1).repeat(2, axis=2)
    np.testing.assert_allclose(shuffled, nearest, rtol=1e-5, atol=1e-6)
    assert 0.01 < kernel.std() < 0.03  # RandomNormal(0, 0.02)


def test_icnr_rejects_indivisible_channels():
    with pytest.raises(ValueError, match="divisible by 4"):
        ICNR(2)((3, 3, 4, 6))


def test_self_attention_starts_as_identity_and_learns_gamma():
    layer, x, out = assert_layer_contract(
        SelfAttention2D, {"squeeze": 8}, (2, 4, 4, 16), (2, 4, 4, 16)
    )
    np.testing.assert_array_equal(out, x)  # gamma == 0
    layer.gamma.assign(1.0)
    assert not np.allclose(keras.ops.convert_to_numpy(layer(x)), x)
    assert len(layer.trainable_weights) == 7  # f, g, h kernels and biases + gamma


def _self_attention_reference(layer, x, gamma):
    """SAGAN's formula in numpy: gamma * softmax(g f^T) h + x, unscaled scores."""
    (wf, bf), (wg, bg), (wh, bh) = [
        [keras.ops.convert_to_numpy(w).astype(np.float64) for w in conv.weights]
        for conv in (layer.query, layer.key, layer.value)
    ]
    batch, rows, cols, channels = x.shape
    out = []
    for face in x.astype(np.float64):
        flat = face.reshape(rows * cols, channels)
        f, g, h = flat @ wf[0, 0] + bf, flat @ wg[0, 0] + bg, flat @ wh[0, 0] + bh
        s = g @ f.T
        beta = np.exp(s - s.max(1, keepdims=True))
        beta /= beta.sum(1, keepdims=True)
        out.append(gamma * (beta @ h).reshape(rows, cols, channels) + face)
    return np.stack(out)


@pytest.mark.parametrize("fused", [False, True])
def test_self_attention_matches_numpy_reference(fused):
    layer = SelfAttention2D(squeeze=8, fused=fused)
    x = np.random.default_rng(4).normal(size=(2, 6, 5, 16)).astype("float32")
    layer(x)
    layer.gamma.assign(0.7)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(x)),
        _self_attention_reference(layer, x, 0.7),
        rtol=1e-4,
        atol=1e-5,
    )


@pytest.mark.parametrize("block_scores", [2**21, 21])
def test_attention_backward_pass_equals_finite_differences(block_scores, monkeypatch):
    """`attention`'s hand-written gradient against central finite differences of
    softmax(q k^T) v in float64 (tf.test.compute_gradient), for q, k and v, with
    more keys than queries so that a transposed product is caught; in one query
    block, and in blocks of 3 queries (21 scores / 7 keys) with a shorter last one."""
    monkeypatch.setattr(self_attention, "BLOCK_SCORES", block_scores)
    assert len(self_attention.query_blocks(5, 7)) == (1 if block_scores > 35 else 2)
    rng = np.random.default_rng(11)
    q, k, v = (
        tf.constant(rng.normal(size=shape), tf.float64)
        for shape in ((2, 5, 3), (2, 7, 3), (2, 7, 4))
    )
    theoretical, numerical = tf.test.compute_gradient(attention, [q, k, v])
    for analytic, numeric in zip(theoretical, numerical):
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_attention_gradients_equal_tensorflows_automatic_ones(scale, monkeypatch):
    """At the decoder's shapes (positions 32x32, 32 channels, d = 4), float32, in
    blocks of 384 queries (the last one 256), for ordinary and very peaked scores
    (scale 30: scores in the hundreds, softmax rows near one-hot): the same
    outputs and gradients as `attention_autodiff`."""
    monkeypatch.setattr(self_attention, "BLOCK_SCORES", 384 * 1024)
    assert len(self_attention.query_blocks(1024, 1024)) == 3
    rng = np.random.default_rng(12)
    q, k = (
        tf.constant(scale * rng.normal(size=(2, 1024, 4)), tf.float32) for _ in "qk"
    )
    v = tf.constant(rng.normal(size=(2, 1024, 32)), tf.float32)
    weights = tf.constant(rng.normal(size=(2, 1024, 32)), tf.float32)

    def outputs_and_gradients(fn):
        with tf.GradientTape() as tape:
            tape.watch([q, k, v])
            o = fn(q, k, v)
            loss = tf.reduce_sum(o * weights)
        return [o, *tape.gradient(loss, [q, k, v])]

    expected = outputs_and_gradients(attention_autodiff)
    for got, want in zip(outputs_and_gradients(attention), expected):
        assert np.all(np.isfinite(got.numpy()))
        tolerance = 1e-5 * float(tf.reduce_max(tf.abs(want)))
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=tolerance)


def test_self_attention_layer_gradients_equal_with_either_backward_pass():
    """Same layer weights: the custom and the automatic backward pass give the same
    gradients for every weight (f, g, h kernels and biases, gamma) and the input."""
    x = tf.constant(np.random.default_rng(13).normal(size=(2, 8, 8, 32)), tf.float32)
    layers = [SelfAttention2D(custom_gradient=flag) for flag in (True, False)]
    for layer in layers:
        layer.build(x.shape)
    layers[1].set_weights(layers[0].get_weights())
    for layer in layers:
        layer.gamma.assign(0.8)
    grads = []
    for layer in layers:
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.sin(layer(x)))
        grads.append(tape.gradient(loss, [x, *layer.trainable_weights]))
    # f's bias shifts each row's scores by a constant, which the softmax ignores:
    # its gradient is 0, so both sides hold only rounding noise there. Tolerances
    # are relative to the largest gradient of the layer.
    scale = max(float(np.abs(g.numpy()).max()) for g in grads[1])
    names = ["x", *(w.path for w in layers[1].trainable_weights)]
    for name, custom, automatic in zip(names, *grads):
        np.testing.assert_allclose(
            custom.numpy(),
            automatic.numpy(),
            rtol=1e-4,
            atol=1e-5 * scale,
            err_msg=name,
        )
    paths = [w.path for w in layers[0].trainable_weights]
    key_bias = paths.index(layers[0].query.bias.path) + 1  # after x
    assert all(np.abs(g[key_bias].numpy()).max() < 1e-5 * scale for g in grads)
    assert SelfAttention2D().custom_gradient  # the default
    assert not SelfAttention2D.from_config(layers[1].get_config()).custom_gradient
    with pytest.raises(ValueError, match="custom_gradient must be"):
        SelfAttention2D(custom_gradient="yes")


def test_fused_self_attention_loads_the_explicit_layers_saved_weights(tmp_path):
    """Same variables: weights saved from the explicit layer load into the fused one
    (and the other way round) and give the same outputs."""
    x = np.random.default_rng(7).normal(size=(2, 8, 8, 32)).astype("float32")

    def model(fused):
        inputs = keras.Input((8, 8, 32))
        return keras.Model(inputs, SelfAttention2D(fused=fused, name="attn")(inputs))

    explicit = model(False)
    explicit.get_layer("attn").gamma.assign(1.3)
    for conv in ("query", "key", "value"):  # non-zero biases, so they count too
        bias = getattr(explicit.get_layer("attn"), conv).bias
        bias.assign(np.linspace(-0.5, 0.5, bias.shape[0]).astype("float32"))
    explicit.save_weights(tmp_path / "old.weights.h5")
    fused = model(True)
    fused.load_weights(tmp_path / "old.weights.h5")
    assert [w.path for w in fused.weights] == [w.path for w in explicit.weights]
    expected = _self_attention_reference(explicit.get_layer("attn"), x, 1.3)
    for net in (explicit, fused):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(net(x)), expected, rtol=1e-4, atol=1e-5
        )
    assert SelfAttention2D.from_config(
        fused.get_layer("attn").get_config()
    ).fused  # the choice is kept in the saved config


def test_instancenorm_is_per_sample_per_channel():
    x = np.random.default_rng(5).normal(3.0, 2.0, size=(2, 6, 5, 4)).astype("float32")
    out = keras.ops.convert_to_numpy(normalization("instancenorm", "n")(x))
    mean, std = x.mean(axis=(1, 2), keepdims=True), x.std(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(
        out, (x - mean) / np.sqrt(std**2 + 1e-3), rtol=1e-4, atol=1e-4
    )


def test_layernorm_is_per_sample_over_all_axes():
    x = np.random.default_rng(6).normal(1.0, 3.0, size=(2, 4, 4, 8)).astype("float32")
    out = keras.ops.convert_to_numpy(normalization("layernorm", "n")(x))
    mean, var = (
        x.mean(axis=(1, 2, 3), keepdims=True),
        x.var(axis=(1, 2, 3), keepdims=True),
    )
    np.testing.assert_allclose(
        out, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-4, atol=1e-4
    )


def contrib_instance_norm(x):
    """keras-contrib InstanceNormalization(axis=None) at init (gamma 1, beta 0):
    per sample over every non-batch axis, epsilon added to the std."""
    axes = tuple(range(1, x.ndim))
    return (x - x.mean(axes, keepdims=True)) / (x.std(axes, keepdims=True) + 1e-3)


def test_instancenorm_v22_is_keras_contribs_axis_none():
    x = np.random.default_rng(8).normal(2.0, 3.0, size=(2, 4, 5, 6)).astype("float32")
    layer = normalization("instancenorm_v22", "n")
    out = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(out, contrib_instance_norm(x), rtol=1e-4, atol=1e-4)
    assert [tuple(w.shape) for w in layer.weights] == [(1,), (1,)]  # scalar affine


@pytest.mark.parametrize("kind", NORMS)
def test_every_norm_keeps_shape(kind):
    x = np.random.default_rng(7).normal(size=(2, 4, 4, 32)).astype("float32")
    assert keras.ops.convert_to_numpy(normalization(kind, "n")(x)).shape == x.shape


def test_hybrid_norm_halves_with_v22_instance_half():
    layer, x, out = assert_layer_contract(
        HybridNormalization, {}, (2, 4, 4, 8), (2, 4, 4, 8)
    )
    np.testing.assert_allclose(
        out[..., 4:], contrib_instance_norm(x[..., 4:]), rtol=1e-4, atol=1e-4
    )
    kernel, bias = [keras.ops.convert_to_numpy(w) for w in layer.conv.weights]
    np.testing.assert_allclose(
        out[..., :4], x[..., :4] @ kernel[0, 0] + bias, rtol=1e-4, atol=1e-5
    )
    with pytest.raises(ValueError, match="even"):
        HybridNormalization()(np.zeros((1, 2, 2, 3), "float32"))


def test_hybrid_norm_in_upscale_ps_splits_group_f_of_4f():
    # v2.2's upscale_ps calls normalization(x, 'hybrid', f) on 4f channels: f/2
    # channels go through the 1x1 conv, the other 3.5f through the instance norm.
    f = 8
    x = np.random.default_rng(9).normal(size=(2, 4, 4, 4 * f)).astype("float32")
    layer = HybridNormalization(group=f)
    out = keras.ops.convert_to_numpy(layer(x))
    kernel, bias = [keras.ops.convert_to_numpy(w) for w in layer.conv.weights]
    assert kernel.shape == (1, 1, f // 2, f // 2)
    np.testing.assert_allclose(
        out[..., : f // 2], x[..., : f // 2] @ kernel[0, 0] + bias, atol=1e-5
    )
    np.testing.assert_allclose(
        out[..., f // 2 :], contrib_instance_norm(x[..., f // 2 :]), atol=1e-4
    )


def test_unknown_norm_names_allowed_values():
    with pytest.raises(ValueError, match="instancenorm"):
        normalization("weightnorm", "n")


def test_reflection_padding_equals_numpy_reflect():
    _, x, out = assert_layer_contract(
        ReflectionPadding2D, {"padding": 1}, (2, 4, 5, 3), (2, 6, 7, 3)
    )
    np.testing.assert_array_equal(
        out, np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), "reflect")
    )
