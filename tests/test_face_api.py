"""Tests of the face-api ports: weight loading, and outputs against face-api itself.

`TFJS_EMBEDDING` was computed by @vladmandic/face-api 1.7.15's own `FaceRecognitionNet`
(TF.js 4.22, CPU backend, Node 20) on the same pixels as `_reference_chip`, with:
`net.loadFromWeightMap(tf.io.decodeWeights(bin, manifest[0].weights));
net.computeFaceDescriptor(tf.tensor(pixels, [150, 150, 3]))`.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from faceswap_gan.face_api import (
    RECOGNITION_FEATURE_LAYERS,
    WEIGHTS_DIR,
    build_landmark_model,
    build_recognition_model,
    load_landmark_model,
    load_recognition_model,
    load_weight_map,
)
from faceswap_gan.face_api.weights import assign_weights, layer_param
from faceswap_gan.images import read_image

# TF.js parameter name -> Keras variable name, where the two differ.
KERAS_VARIABLE_NAMES = {
    "filters": "kernel",
    "weights": "kernel",
    "depthwise_filter": "depthwise_kernel",
    "pointwise_filter": "pointwise_kernel",
}
MODELS = {
    "face_recognition_model": build_recognition_model,
    "face_landmark_68_model": build_landmark_model,
}

# fmt: off
TFJS_EMBEDDING = np.array([
    -0.07236, 0.09542, 0.06846, 0.01541, -0.09530, -0.06026, -0.01455, -0.06965,
    0.15527, -0.06499, 0.24471, -0.02259, -0.21497, -0.08130, -0.00989, 0.12469,
    -0.15887, -0.09238, -0.07779, -0.10600, 0.04522, 0.01712, 0.01059, 0.07809,
    -0.05367, -0.30246, -0.07185, -0.07813, 0.09719, -0.09373, -0.02282, 0.10822,
    -0.11265, -0.05922, 0.01472, 0.10892, -0.03142, -0.06667, 0.23862, -0.05946,
    -0.18312, -0.02653, 0.09161, 0.29973, 0.18039, 0.03811, 0.01874, -0.05200, 0.09687,
    -0.24266, 0.04366, 0.20004, 0.10175, 0.06349, 0.06759, -0.15093, 0.02038, 0.14326,
    -0.17026, 0.07975, 0.12381, -0.14972, -0.02840, -0.11118, 0.23865, 0.09798,
    -0.13463, -0.10830, 0.10749, -0.22026, -0.08924, 0.09832, -0.10234, -0.16819,
    -0.29503, 0.06770, 0.44859, 0.17190, -0.12392, 0.03364, -0.00630, -0.06905, 0.10837,
    0.14469, -0.12448, -0.02183, -0.11027, 0.03210, 0.18409, 0.03756, 0.02792, 0.21706,
    0.01056, 0.03685, -0.01162, 0.02146, -0.05116, 0.01666, -0.10283, 0.05582, 0.02680,
    -0.16314, 0.02939, 0.06605, -0.17918, 0.08963, -0.03084, 0.01464, 0.03039, -0.01522,
    -0.09899, -0.01610, 0.19856, -0.25568, 0.15371, 0.16904, 0.07098, 0.14249, 0.08807,
    0.15993, -0.00638, -0.09888, -0.17416, -0.01777, 0.04492, -0.09940, 0.06407,
    0.02823,
])
# fmt: on


@pytest.fixture(scope="module")
def recognition():
    return load_recognition_model()


@pytest.fixture(scope="module")
def landmark_net():
    return load_landmark_model()


def _reference_chip(faces_a):
    return read_image(faces_a / "frame00000.jpg")[53:203, 53:203].astype(np.float32)


def _manifest(name):
    return json.loads((WEIGHTS_DIR / f"{name}-weights_manifest.json").read_text())[0]


@pytest.mark.parametrize("index", [1, 2])
def test_dequantisation_matches_hand_computation(index):
    """Tensor `index` of the landmark manifest, decoded by hand from the raw bytes."""
    entries = _manifest("face_landmark_68_model")["weights"]
    offset = sum(int(np.prod(entry["shape"])) for entry in entries[:index])  # uint8
    entry = entries[index]
    raw = (WEIGHTS_DIR / "face_landmark_68_model.bin").read_bytes()
    count = int(np.prod(entry["shape"]))
    quant = entry["quantization"]
    expected = [raw[offset + i] * quant["scale"] + quant["min"] for i in range(count)]
    loaded = load_weight_map(None, "face_landmark_68_model")[entry["name"]]
    assert loaded.shape == tuple(entry["shape"])
    np.testing.assert_allclose(loaded.ravel(), expected, rtol=1e-6, atol=1e-7)


def test_unquantised_float32_tensor_is_read_verbatim():
    """The recognition manifest stores eight conv64 filters as plain float32."""
    entries = _manifest("face_recognition_model")["weights"]
    raw = (WEIGHTS_DIR / "face_recognition_model.bin").read_bytes()
    offset = 0
    for entry in entries:
        size = int(np.prod(entry["shape"]))
        if "quantization" not in entry:
            break
        offset += size  # one byte per uint8 value
    expected = np.frombuffer(raw, "<f4", size, offset).reshape(entry["shape"])
    loaded = load_weight_map(None, "face_recognition_model")[entry["name"]]
    np.testing.assert_array_equal(loaded, expected)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_manifest_tensor_loads_into_exactly_one_variable(name):
    weight_map = load_weight_map(None, name)
    model = MODELS[name]()
    assign_weights(model, weight_map)
    variables = {}
    for layer in model.layers:
        for variable in layer.weights:
            variables[f"{layer.name}/{variable.name}"] = variable.numpy()
    assert len(variables) == len(weight_map)  # no leftovers on either side
    assert model.count_params() == sum(value.size for value in weight_map.values())
    unused = dict(variables)
    for tensor_name, value in weight_map.items():
        layer_name, param = layer_param(tensor_name)
        key = f"{layer_name}/{param}"
        if key not in unused:
            key = f"{layer_name}/{KERAS_VARIABLE_NAMES[param]}"
        np.testing.assert_array_equal(unused.pop(key), value, err_msg=tensor_name)
    assert not unused


def test_assign_weights_rejects_missing_and_extra_tensors():
    weight_map = load_weight_map(None, "face_landmark_68_model")
    model = build_landmark_model()
    with pytest.raises(ValueError, match="without a layer"):
        assign_weights(model, {**weight_map, "dense9/conv0/bias": np.zeros(3)})
    del weight_map["fc/bias"]
    with pytest.raises(ValueError, match="fc"):
        assign_weights(model, weight_map)


def test_missing_weights_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_recognition_model(tmp_path / "nowhere")


def test_embedding_matches_face_api_tfjs(recognition, faces_a):
    chip = _reference_chip(faces_a)
    embedding = recognition.predict_on_batch(chip[None])[0]
    assert embedding.shape == (128,)
    np.testing.assert_allclose(embedding, TFJS_EMBEDDING, atol=2e-3)


def test_embedding_gradient_reaches_the_input(recognition, faces_a):
    chip = tf.constant(_reference_chip(faces_a)[None])
    with tf.GradientTape() as tape:
        tape.watch(chip)
        embedding = recognition(chip)
        target = tf.reduce_sum(tf.square(embedding - 0.1))
    grad = tape.gradient(target, chip).numpy()
    assert np.all(np.isfinite(grad))
    assert np.count_nonzero(grad) > 0.9 * grad.size


def test_feature_layers_are_multi_scale_deepest_first(recognition, faces_a):
    outputs = [
        recognition.get_layer(name).output for name in RECOGNITION_FEATURE_LAYERS
    ]
    extractor = keras.Model(recognition.input, outputs)
    features = extractor.predict_on_batch(_reference_chip(faces_a)[None])
    sides = [feature.shape[1] for feature in features]
    assert len(features) == 4 and sides == sorted(sides)
    assert len(set(sides)) == 4
    assert all(np.all(feature >= 0) and feature.max() > 0 for feature in features)


def test_landmark_net_output_is_in_the_unit_square(landmark_net, faces_a):
    face = read_image(faces_a / "frame00000.jpg")[40:230, 48:208]
    crop = tf.image.resize(face[None].astype(np.float32), (112, 112)).numpy()
    points = landmark_net.predict_on_batch(crop).reshape(68, 2)
    assert np.all((points > 0) & (points < 1))


@pytest.mark.slow
@pytest.mark.parametrize("loader", [load_recognition_model, load_landmark_model])
def test_models_survive_keras_save_and_load(loader, tmp_path):
    model = loader()
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    size = model.input.shape[1]
    image = np.random.default_rng(1).uniform(0, 255, (2, size, size, 3))
    np.testing.assert_allclose(
        restored.predict_on_batch(image), model.predict_on_batch(image), atol=1e-5
    )
