"""Per-frame identity of a converted video (`evaluation.identity_video`), on the
bundled clip of person A and the real crops of the two people."""

import numpy as np
import pytest

from faceswap_gan.demo import SAMPLE_A
from faceswap_gan.evaluation.identity_video import swap_identity_per_frame
from faceswap_gan.faces.identity import build_identity_embedder
from faceswap_gan.images import list_images, read_image
from faceswap_gan.video import VideoWriter, iter_video_frames

FRAMES = 6


@pytest.fixture(scope="module")
def embedder():
    return build_identity_embedder("mobilefacenet")


def crops(folder):
    return np.stack([read_image(p) for p in list_images(folder)])


def write_video(path, frames):
    height, width = frames[0].shape[:2]
    with VideoWriter(path, 30, (width, height), crf=0) as writer:
        for frame in frames:
            writer.write(frame)
    return path


@pytest.mark.slow
def test_unchanged_face_is_never_closer_and_panels_are_read(
    tmp_path, embedder, faces_a, faces_b
):
    frames = [f for _, f in iter_video_frames(SAMPLE_A, 1, FRAMES)]
    # A "combined" video [source | source]: the result panel shows the source face.
    combined = write_video(
        tmp_path / "combined.mp4", [np.concatenate([f, f], axis=1) for f in frames]
    )
    to_b = swap_identity_per_frame(
        SAMPLE_A, combined, crops(faces_b), embedder, panel=1
    )
    assert to_b.frames == FRAMES and len(to_b.indices) == FRAMES
    # Same place, same face (up to lossless re-encoding): never strictly closer.
    np.testing.assert_allclose(to_b.swapped, to_b.source, atol=0.02)
    assert to_b.closer_fraction <= 0.5
    # The scorer knows who it sees: person A's clip is near A's crops, far from B's.
    to_a = swap_identity_per_frame(
        SAMPLE_A, combined, crops(faces_a), embedder, panel=1
    )
    assert to_a.source.min() > to_b.source.max() + 0.2
    with pytest.raises(ValueError, match="panel 2"):
        swap_identity_per_frame(SAMPLE_A, combined, crops(faces_b), embedder, panel=2)


@pytest.mark.slow
def test_a_face_of_the_target_person_is_closer(tmp_path, embedder, faces_a, faces_b):
    # Paste person B's aligned crop over A's face region in the "result": every
    # frame's result must score closer to B than the source does.
    from faceswap_gan.faces.alignment import align, unalign
    from faceswap_gan.faces.detection import FaceDetector

    detector = FaceDetector()
    b_crop = crops(faces_b)[0]
    b_points = detector.detect(b_crop)[0].landmarks5
    b_aligned, _ = align(b_crop, b_points, 256)
    results = []
    frames = [f for _, f in iter_video_frames(SAMPLE_A, 1, FRAMES)]
    for frame in frames:
        _, matrix = align(frame, detector.detect(frame)[0].landmarks5, 256)
        inside = unalign(np.ones((256, 256), np.uint8), matrix, frame.shape)[..., None]
        results.append(
            np.where(inside > 0, unalign(b_aligned, matrix, frame.shape), frame)
        )
    swapped = write_video(tmp_path / "swapped.mp4", results)
    scores = swap_identity_per_frame(SAMPLE_A, swapped, crops(faces_b), embedder)
    assert scores.closer_fraction == 1.0
    assert scores.swapped.mean() > scores.source.mean() + 0.2
