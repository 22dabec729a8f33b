"""VGGFace ResNet-50: architecture, and loading keras-vggface's Keras-2 weight file."""

import shutil

import h5py
import keras
import numpy as np
import pytest

from faceswap_gan import vggface
from faceswap_gan.errors import FaceswapError

# keras-vggface RESNET50 (keras_vggface/models.py), written out independently of the
# module: (stage, blocks, (filters1, filters2, filters3)); block 1 has the projection.
STAGES = [
    (2, 3, (64, 64, 256)),
    (3, 4, (128, 128, 512)),
    (4, 6, (256, 256, 1024)),
    (5, 3, (512, 512, 2048)),
]


def reference_conv_layers():
    """[(keras-vggface conv name, kernel shape (kh, kw, in, out))], each with a BN."""
    layers, channels = [("conv1/7x7_s2", (7, 7, 3, 64))], 64
    for stage, blocks, (f1, f2, f3) in STAGES:
        for block in range(1, blocks + 1):
            name = f"conv{stage}_{block}"
            layers += [
                (f"{name}_1x1_reduce", (1, 1, channels, f1)),
                (f"{name}_3x3", (3, 3, f1, f2)),
                (f"{name}_1x1_increase", (1, 1, f2, f3)),
            ]
            if block == 1:
                layers.append((f"{name}_1x1_proj", (1, 1, channels, f3)))
            channels = f3
    return layers


def reference_weights(rng):
    """{layer name: {weight: array}} with random values of keras-vggface's shapes."""
    weights = {}
    for name, shape in reference_conv_layers():
        weights[name] = {"kernel": rng.normal(0, 0.05, shape).astype(np.float32)}
        channels = shape[-1]
        weights[name + "/bn"] = {
            "gamma": rng.uniform(0.5, 1.5, channels).astype(np.float32),
            "beta": rng.normal(0, 0.1, channels).astype(np.float32),
            "moving_mean": rng.normal(0, 0.1, channels).astype(np.float32),
            "moving_variance": rng.uniform(0.5, 2.0, channels).astype(np.float32),
        }
    return weights


def write_keras2_weights(path, weights):
    """Writes `weights` in Keras 2's `save_weights` HDF5 layout, as the release file."""
    weightless = ["input_1", "activation_1", "max_pooling2d_1", "add_1", "avg_pool"]
    with h5py.File(path, "w") as file:
        # Keras 2 stores name lists as np.asarray(list of bytes): fixed-length "S".
        file.attrs["layer_names"] = np.asarray(
            [n.encode() for n in [*weightless, *weights]]
        )
        file.attrs["backend"] = b"tensorflow"
        file.attrs["keras_version"] = b"2.2.4"
        for name in weightless:
            file.create_group(name).attrs["weight_names"] = np.array([], dtype="S1")
        for name, values in weights.items():
            group = file.create_group(name)  # "a/b" nests groups, as in Keras 2.
            weight_names = [f"{name}/{key}:0" for key in values]
            group.attrs["weight_names"] = np.asarray([w.encode() for w in weight_names])
            for weight_name, value in zip(weight_names, values.values(), strict=True):
                group.create_dataset(weight_name, data=value)


@pytest.fixture(scope="module")
def weight_file(tmp_path_factory):
    weights = reference_weights(np.random.default_rng(0))
    path = tmp_path_factory.mktemp("vggface") / "rcmalli_vggface_tf_notop_resnet50.h5"
    write_keras2_weights(path, weights)
    return path, weights


@pytest.fixture(scope="module")
def loaded_model(weight_file):
    return vggface.build_vggface_resnet50(weights=weight_file[0])


def test_every_layer_loads_the_file_weights(weight_file, loaded_model):
    _, weights = weight_file
    assert len(weights) == 106
    for name, values in weights.items():
        layer = loaded_model.get_layer(name.replace("/", "_"))
        assert {v.name for v in layer.weights} == set(values), name
        for variable in layer.weights:
            np.testing.assert_array_equal(
                keras.ops.convert_to_numpy(variable), values[variable.name]
            )


def test_parameter_count_and_shapes(loaded_model):
    # By hand from the table: conv kernels + 4 BN vectors per conv, no conv biases.
    by_hand = sum(np.prod(s) + 4 * s[-1] for _, s in reference_conv_layers())
    # = keras.applications ResNet50 notop (23,587,712) minus its 26,560 conv biases.
    assert by_hand == 23_561_152
    assert loaded_model.count_params() == 23_561_152
    assert loaded_model.output.shape == (None, 1, 1, 2048)
    assert loaded_model.get_layer("conv5_3_relu").output.shape == (None, 7, 7, 2048)
    image = np.random.default_rng(1).normal(0, 50, (2, 224, 224, 3)).astype("float32")
    output = loaded_model.predict(image, verbose=0)
    assert output.shape == (2, 1, 1, 2048) and np.isfinite(output).all()


def test_batch_norm_uses_loaded_statistics(weight_file, loaded_model):
    """conv1 BN in inference = gamma (x - mean) / sqrt(var + 1e-3) + beta (numpy)."""
    _, weights = weight_file
    probe = keras.Model(
        loaded_model.input,
        [loaded_model.get_layer(n).output for n in ("conv1_7x7_s2", "conv1_7x7_s2_bn")],
    )
    image = np.random.default_rng(2).normal(0, 50, (1, 224, 224, 3)).astype("float32")
    conv, bn = probe.predict(image, verbose=0)
    w = weights["conv1/7x7_s2/bn"]
    expected = (conv - w["moving_mean"]) / np.sqrt(w["moving_variance"] + 1e-3)
    expected = expected * w["gamma"] + w["beta"]
    np.testing.assert_allclose(bn, expected, rtol=1e-4, atol=1e-3)


def test_layer_order_matches_keras_vggface_indices():
    """faceswap-GAN picks features by index in keras-vggface's `model.layers`."""
    model = vggface.build_vggface_resnet50()
    assert len(model.layers) == 174  # input + 173 layers, as in keras-vggface
    names = [layer.name for layer in model.layers]
    assert names[1] == "conv1_7x7_s2"  # 112x112, after the conv (before BN)
    assert (names[15], names[35], names[36]) == (
        "conv2_1_add",
        "conv2_3_add",
        "conv2_3_relu",
    )
    assert (names[77], names[78]) == ("conv3_4_add", "conv3_4_relu")
    assert names[-3:] == ["conv5_3_add", "conv5_3_relu", "avg_pool"]


def _copy(path, tmp_path):
    copy = tmp_path / "weights.h5"
    shutil.copy(path, copy)
    return copy


def test_wrong_shape_raises_naming_the_layer(weight_file, tmp_path):
    path = _copy(weight_file[0], tmp_path)
    with h5py.File(path, "a") as file:
        group = file["conv3_2_3x3"]
        del group["conv3_2_3x3/kernel:0"]
        group.create_dataset("conv3_2_3x3/kernel:0", data=np.zeros((3, 3, 64, 128)))
    with pytest.raises(ValueError, match=r"conv3_2_3x3/kernel.*\(3, 3, 64, 128\)"):
        vggface.build_vggface_resnet50(weights=path)


def test_missing_layer_raises_naming_it(weight_file, tmp_path):
    path = _copy(weight_file[0], tmp_path)
    with h5py.File(path, "a") as file:
        names = file.attrs["layer_names"]
        file.attrs["layer_names"] = names[names != b"conv4_6_1x1_increase/bn"]
    with pytest.raises(ValueError, match="conv4_6_1x1_increase/bn"):
        vggface.build_vggface_resnet50(weights=path)


def test_unnamed_weights_load_by_position(weight_file, tmp_path):
    """Keras 2 loaded by position; Keras 1 files named weights `param_0`, ..."""
    path, weights = weight_file
    path = _copy(path, tmp_path)
    layer = "conv4_1_1x1_proj/bn"
    with h5py.File(path, "a") as file:
        group = file[layer]
        old = [n.decode() for n in group.attrs["weight_names"]]
        for index, name in enumerate(old):
            group.move(name, f"param_{index}")
        group.attrs["weight_names"] = np.asarray([b"param_%d" % i for i in range(4)])
    model = vggface.build_vggface_resnet50(weights=path)
    for variable in model.get_layer("conv4_1_1x1_proj_bn").weights:
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(variable), weights[layer][variable.name]
        )


def test_bad_weights_argument(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="not found"):
        vggface.build_vggface_resnet50(weights=tmp_path / "missing.h5")
    not_keras = tmp_path / "empty.h5"
    h5py.File(not_keras, "w").close()
    with pytest.raises(ValueError, match="layer_names"):
        vggface.build_vggface_resnet50(weights=not_keras)
    # An unreachable address stands in for the (offline) release URL.
    monkeypatch.setattr(
        vggface,
        "VGGFACE_WEIGHTS_URL",
        "http://127.0.0.1:9/faceswap_gan_test_unreachable.h5",
    )
    with pytest.raises(FaceswapError, match="pass its path"):
        vggface.build_vggface_resnet50(weights="vggface")
