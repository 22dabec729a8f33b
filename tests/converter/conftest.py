"""Fixtures of the converter tests: the bundled clips, a real tiny model, MTCNN."""

from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "faceswap_gan" / "data" / "samples"


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
