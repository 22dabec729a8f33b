"""Perceptual feature extractors: shapes, gradients, frozen, identity on real faces."""

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from faceswap_gan.images import list_images, read_image, to_model_range
from faceswap_gan.perceptual import (
    PERCEPTUAL_BACKENDS,
    VGGFACE_MEAN_BGR,
    build_perceptual_model,
)

EXPECTED_SHAPES = {
    ("vggface", False): [(7, 7, 2048), (28, 28, 512), (55, 55, 256), (112, 112, 64)],
    ("vggface", True): [(7, 7, 2048), (28, 28, 512), (55, 55, 256), (55, 55, 256)],
    ("face_api", False): [(4, 4, 256), (8, 8, 128), (17, 17, 64), (35, 35, 32)],
}


@pytest.fixture(scope="module")
def models():
    """One model per (backend, before_activ); vggface has random weights."""
    return {key: build_perceptual_model(*key) for key in EXPECTED_SHAPES}


def _images(shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def _inner_features_model(model):
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


@pytest.mark.parametrize("key", list(EXPECTED_SHAPES))
@pytest.mark.parametrize("size", [64, 256])
def test_feature_shapes_for_any_input_size(models, key, size):
    outputs = models[key].predict(_images((2, size, size, 3)), verbose=0)
    assert [o.shape for o in outputs] == [(2, *s) for s in EXPECTED_SHAPES[key]]
    assert all(o.dtype == np.float32 and np.isfinite(o).all() for o in outputs)


@pytest.mark.parametrize("key", list(EXPECTED_SHAPES))
def test_frozen_and_gradients_reach_the_image(models, key):
    model = models[key]
    assert model.trainable_weights == [] and not model.trainable
    image = tf.Variable(_images((2, 64, 64, 3), seed=1))
    with tf.GradientTape() as tape:
        features = model(image, training=True)  # as inside a train_step
        loss = sum(tf.reduce_mean(tf.square(f)) for f in features)
    gradient = tape.gradient(loss, image).numpy()
    # Frozen BatchNormalization keeps its moving statistics even with training=True.
    for trained, inferred in zip(features, model(image, training=False), strict=True):
        np.testing.assert_array_equal(trained.numpy(), inferred.numpy())
    assert np.isfinite(gradient).all()
    assert np.abs(gradient).mean() > 0 and (np.abs(gradient) > 0).mean() > 0.5


def test_unknown_backend_and_options_raise():
    with pytest.raises(ValueError, match="vggface"):
        build_perceptual_model("vgg19")
    with pytest.raises(ValueError, match="before_activ"):
        build_perceptual_model("face_api", before_activ=True)
    assert PERCEPTUAL_BACKENDS == ("vggface", "face_api")


def test_vggface_before_activ_takes_pre_relu_layers(models):
    image = _images((2, 64, 64, 3), seed=2)
    after = models[("vggface", False)].predict(image, verbose=0)
    before = models[("vggface", True)].predict(image, verbose=0)
    for feature in after[:3]:  # block outputs after ReLU
        assert feature.min() >= 0 and (feature == 0).mean() > 0.1
    assert after[3].min() < 0  # the first conv, before its BN and ReLU
    for feature in before:  # residual sums before ReLU
        assert feature.min() < 0 and (feature == 0).mean() < 0.01


@pytest.mark.parametrize("backend", PERCEPTUAL_BACKENDS)
def test_input_conversion_matches_numpy_reference(models, backend):
    """Resize (OpenCV bilinear, exact for 2x) + colour conversion done by hand."""
    model = models[(backend, False)]
    size = 224 if backend == "vggface" else 150
    image = _images((1, size // 2, size // 2, 3), seed=3)
    resized = cv2.resize(image[0], (size, size), interpolation=cv2.INTER_LINEAR)
    pixels = (resized + 1.0) * 127.5  # RGB 0..255
    if backend == "vggface":
        pixels = pixels[..., ::-1] - np.array(VGGFACE_MEAN_BGR, np.float32)
    reference = _inner_features_model(model).predict(pixels[None], verbose=0)
    for got, expected in zip(model.predict(image, verbose=0), reference, strict=True):
        scale = np.abs(expected).max()
        np.testing.assert_allclose(got, expected, atol=2e-3 * scale, rtol=0)


def _instance_norm(feature):
    mean = feature.mean(axis=(1, 2), keepdims=True)
    return (feature - mean) / np.sqrt(feature.var(axis=(1, 2), keepdims=True) + 1e-5)


def test_face_api_features_closer_for_the_same_person(models, faces_a, faces_b):
    """Real crops: same person (frames ~8 s apart) vs. the other person, per scale."""
    faces = [
        np.stack([to_model_range(read_image(p)) for p in list_images(folder)])
        for folder in (faces_a, faces_b)
    ]
    features = [models[("face_api", False)].predict(f, verbose=0) for f in faces]
    pairs = range(8)  # crop i vs. crop i + 8 of the same person; crop i of A vs. of B
    for scale in range(4):
        a, b = (_instance_norm(f[scale]) for f in features)
        same = np.mean([np.mean((x[i] - x[i + 8]) ** 2) for x in (a, b) for i in pairs])
        different = np.mean([np.mean((a[i] - b[i]) ** 2) for i in pairs])
        print(f"scale {a.shape[1:3]}: same {same:.3f}, different {different:.3f}")
        assert same < 0.75 * different
