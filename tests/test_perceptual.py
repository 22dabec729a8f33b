"""Perceptual feature extractors: layer choice, shapes, gradients, per-scale losses."""

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from faceswap_gan.face_api import build_recognition_model
from faceswap_gan.images import list_images, read_image, to_model_range
from faceswap_gan.losses import instance_normalize, l2
from faceswap_gan.perceptual import (
    PERCEPTUAL_BACKENDS,
    VGGFACE_MEAN_BGR,
    build_perceptual_model,
)

KEYS = [("vggface", False), ("vggface", True), ("face_api", False)]
NATIVE_SIZE = {"vggface": 224, "face_api": 150}


@pytest.fixture(scope="module")
def models():
    """One model per (backend, before_activ); vggface has random weights."""
    return {key: build_perceptual_model(*key) for key in KEYS}


def _sides(model, size):
    """Spatial sides of the model's feature maps for a `size` px input."""
    return [o.shape[1] for o in model.predict(_images((1, size, size, 3)), verbose=0)]


def _nearest_face_api_sides(vggface_sides):
    """For each VGGFace map (relative to 224 px), the face_api map side (relative to
    150 px) nearest in log scale, among all maps of the recognition net."""
    net = build_recognition_model()  # Shapes only: random weights are enough.
    maps = [layer.output.shape for layer in net.layers if len(layer.output.shape) == 4]
    candidates = sorted({shape[1] for shape in maps})  # 150, 72, 35, 17, 8, 4, 3, 2, 1
    return [
        min(candidates, key=lambda c: abs(np.log(c / 150) - np.log(side / 224)))
        for side in vggface_sides
    ]


def _images(shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def _inner_features_model(model):
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


@pytest.mark.slow
def test_face_api_maps_are_at_the_relative_scales_nearest_vggfaces(models):
    vggface_sides = _sides(models[("vggface", False)], 224)
    assert vggface_sides == [7, 28, 55, 112]  # v2.2's layers: 1/32, 1/8, 1/4, 1/2.
    face_api_sides = _sides(models[("face_api", False)], 150)
    assert face_api_sides == _nearest_face_api_sides(vggface_sides)
    relative = np.array(face_api_sides) / 150 / (np.array(vggface_sides) / 224)
    assert np.all((relative > 0.8) & (relative < 1.1))  # Within 25 % of VGGFace's.


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("size", [64, 256])
def test_feature_shapes_for_any_input_size(models, key, size):
    """Any input size is resized inside: the maps are those of the net's own size."""
    model = models[key]
    native = model.predict(_images((1, *(NATIVE_SIZE[key[0]],) * 2, 3)), verbose=0)
    outputs = model.predict(_images((2, size, size, 3)), verbose=0)
    assert [o.shape for o in outputs] == [(2, *n.shape[1:]) for n in native]
    sides = [o.shape[1] for o in outputs]
    assert len(outputs) == 4 and sides == sorted(sides)  # Deepest first (w_pl order).
    assert all(o.dtype == np.float32 and np.isfinite(o).all() for o in outputs)


@pytest.mark.parametrize("key", KEYS)
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


def test_vggface_before_activ_takes_pre_relu_layers(models):
    image = _images((2, 64, 64, 3), seed=2)
    after = models[("vggface", False)].predict(image, verbose=0)
    before = models[("vggface", True)].predict(image, verbose=0)
    face_api = models[("face_api", False)].predict(image, verbose=0)
    for feature in after[:3] + face_api[:3]:  # block outputs after ReLU
        assert feature.min() >= 0 and (feature == 0).mean() > 0.1
    for feature in (after[3], face_api[3]):  # the first conv, before BN/affine, ReLU
        assert feature.min() < 0 and (feature == 0).mean() < 0.01
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


def _faces(folder, size=64):
    return np.stack(
        [
            cv2.resize(read_image(p), (size, size), interpolation=cv2.INTER_AREA)
            for p in list_images(folder)
        ]
    )  # (16, size, size, 3) uint8 RGB


def _per_scale_loss(model, real, fake):
    """The perceptual term per scale, unweighted (`losses.perceptual` without w_pl)."""
    real_f = model.predict(to_model_range(real), verbose=0)
    fake_f = model.predict(to_model_range(fake), verbose=0)
    return np.array(
        [
            float(
                keras.ops.convert_to_numpy(
                    l2(instance_normalize(r), instance_normalize(f))
                )
            )
            for r, f in zip(real_f, fake_f, strict=True)
        ]
    )


def test_face_api_per_scale_loss_orders_real_differences(models, faces_a, faces_b):
    """Per scale: 0 for the same image; a 1 px shift or a slight blur of the face
    costs less than another person's face."""
    model = models[("face_api", False)]
    a, b = _faces(faces_a), _faces(faces_b)
    shift = np.float32([[1, 0, 1], [0, 1, 0]])
    shifted = np.stack(
        [cv2.warpAffine(f, shift, (64, 64), borderMode=cv2.BORDER_REPLICATE) for f in a]
    )
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 0.7) for f in a])
    same = _per_scale_loss(model, a, a)
    np.testing.assert_allclose(same, 0.0, atol=1e-6)
    other = _per_scale_loss(model, a, b)
    for near in (
        _per_scale_loss(model, a, shifted),
        _per_scale_loss(model, a, blurred),
    ):
        print(f"near {np.round(near, 4)}, other person {np.round(other, 4)}")
        assert np.all(near > 1e-4) and np.all(other > 2 * near)
