"""Shared fixtures: the repository's real test data (face crops, the bundled clips), a
real tiny model and MTCNN; the --run-slow option."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"
SAMPLES = REPO / "faceswap_gan" / "data" / "samples"


@pytest.fixture(scope="session")
def test_data() -> Path:
    return TEST_DATA


@pytest.fixture(scope="session")
def faces_a() -> Path:
    """16 real 256x256 face crops of person A (from shared/data/faces/lp_d6)."""
    return TEST_DATA / "faces" / "a"


@pytest.fixture(scope="session")
def faces_b() -> Path:
    """16 real 256x256 face crops of person B (from shared/data/faces/lp_d10)."""
    return TEST_DATA / "faces" / "b"


@pytest.fixture(scope="session")
def clip_a() -> Path:
    """person_a.mp4: 480x480, 180 frames, 30 fps, AAC audio, one woman."""
    return SAMPLES / "person_a.mp4"


@pytest.fixture(scope="session")
def clip_b() -> Path:
    """person_b.mp4: 512x512, 180 frames, 30 fps, AAC audio, another woman."""
    return SAMPLES / "person_b.mp4"


@pytest.fixture(scope="session")
def tiny_model():
    """A real, untrained FaceSwapGAN at 64 px ("lite", no norm, no self-attention)."""
    from faceswap_gan.config import ArchConfig
    from faceswap_gan.models import FaceSwapGAN

    return FaceSwapGAN(
        ArchConfig(
            image_shape=(64, 64, 3),
            model_capacity="lite",
            norm="none",
            use_self_attn=False,
        )
    )


@pytest.fixture
def zero_alpha_model(tiny_model):
    """`tiny_model` whose decoder_B alpha is all zero (sigmoid bias -100) for AtoB."""
    layer = tiny_model.decoder_B.get_layer("decoder_B_alpha")
    bias = layer.bias.numpy()
    layer.bias.assign(bias - 100.0)
    yield tiny_model
    layer.bias.assign(bias)


@pytest.fixture(scope="session")
def detector():
    """The project's MTCNN FaceDetector with the converter's defaults."""
    from faceswap_gan.faces.detection import FaceDetector

    return FaceDetector()


def _first_frames(path, count):
    from faceswap_gan.video import VideoReader

    frames = []
    for frame in VideoReader(path):
        frames.append(frame)
        if len(frames) == count:
            break
    return frames


@pytest.fixture(scope="session")
def first_frames():
    """`first_frames(path, count)`: the first frames of a video, (H, W, 3) uint8 RGB."""
    return _first_frames


@pytest.fixture(scope="session")
def tiny_run(tiny_model, tmp_path_factory):
    """A run folder holding a checkpoint of `tiny_model` (a --model for the CLI)."""
    from faceswap_gan.checkpoints import save_checkpoint

    run = tmp_path_factory.mktemp("run")
    if getattr(tiny_model, "d_optimizer", None) is None:
        tiny_model.compile()
    save_checkpoint(tiny_model, run / "checkpoints", {"step": 1})
    return run


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow",
        action="store_true",
        help="also run the end-to-end tests marked slow (CI runs them; minutes)",
    )


def pytest_collection_modifyitems(config, items):
    """Deselects `slow` tests unless --run-slow is given or -m names the marker, so
    that plain `python -m pytest` is the fast suite."""
    if config.getoption("--run-slow") or "slow" in (config.getoption("-m") or ""):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]
