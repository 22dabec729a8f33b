"""Bounded memory at inference (issue 11): every network sees at most
`INFERENCE_BATCH` faces per forward pass, with the same outputs as one pass;
`evaluate` keeps its faces at the model size, not as 256 px crops; nearest-face
retrieval, the best/worst grid and the per-frame video identity do not grow with N.

On real face crops (tests/data/faces) and the bundled clip. The spies below wrap
`predict_on_batch` / `embed` to record the batch sizes and then call the real method:
they observe the networks, they do not replace them.
"""

import os
import shutil
import subprocess
import sys
import textwrap
import tracemalloc

import cv2
import keras
import numpy as np
import pytest

from faceswap_gan.config import PRESETS
from faceswap_gan.dataset import FaceSet
from faceswap_gan.evaluation import faces as face_eval
from faceswap_gan.evaluation import metrics
from faceswap_gan.evaluation import report as eval_report
from faceswap_gan.images import list_images, read_image, resize_faces, to_model_range
from faceswap_gan.models.gan import INFERENCE_BATCH, FaceSwapGAN

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def model():
    return FaceSwapGAN(PRESETS["tiny"])


@pytest.fixture(scope="module")
def embedder():
    from faceswap_gan.faces.identity import build_identity_embedder

    return build_identity_embedder("mobilefacenet")


@pytest.fixture(scope="module")
def real_faces(faces_a, faces_b):
    """11 real faces (6 of A, 5 of B) at 64 px in [-1, 1]; 11 is no batch multiple."""
    paths = list_images(faces_a)[:6] + list_images(faces_b)[:5]
    return to_model_range(resize_faces(np.stack([read_image(p) for p in paths]), 64))


@pytest.fixture
def batches(monkeypatch):
    """(model name, leading dimension) of every Keras `predict_on_batch` call."""
    seen = []
    original = keras.Model.predict_on_batch

    def spy(self, x, *args, **kwargs):
        seen.append((self.name, len(x)))
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "predict_on_batch", spy)
    return seen


def spy_embed(monkeypatch, embedder) -> list:
    """Records the number of faces of each `embedder.embed` call."""
    seen, original = [], embedder.embed

    def embed(faces):
        seen.append(len(faces))
        return original(faces)

    monkeypatch.setattr(embedder, "embed", embed)
    return seen


def test_evaluation_batch_is_the_models():
    assert face_eval.BATCH == INFERENCE_BATCH == 8


@pytest.mark.slow
def test_transform_in_batches_equals_one_pass_and_per_face(model, real_faces):
    one = model.transform(real_faces, "A", batch_size=len(real_faces))
    chunked = model.transform(real_faces, "A", batch_size=4)  # 4 + 4 + 3
    per_face = [model.transform(face[None], "A", batch_size=1) for face in real_faces]
    for i, (whole, parts) in enumerate(zip(one, chunked, strict=True)):
        assert parts.shape == whole.shape and parts.dtype == np.float32
        np.testing.assert_allclose(parts, whole, atol=1e-5)
        singles = np.concatenate([outputs[i] for outputs in per_face])
        np.testing.assert_allclose(singles, whole, atol=1e-5)
    swapped = model.swap(real_faces, "AtoB", batch_size=3)
    for a, b in zip(swapped, model.transform(real_faces, "B", len(real_faces))):
        np.testing.assert_allclose(a, b, atol=1e-5)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        model.transform(real_faces, "A", batch_size=0)
    empty = model.transform(real_faces[:0], "A")
    assert [e.shape for e in empty] == [(0, 64, 64, 1), (0, 64, 64, 3), (0, 64, 64, 3)]


def test_transform_never_runs_more_than_the_batch(model, real_faces, batches):
    faces = np.concatenate([real_faces, real_faces])  # 22 faces
    alpha, _, _ = model.swap(faces, "BtoA")
    assert len(alpha) == 22
    assert max(n for _, n in batches) == INFERENCE_BATCH
    assert sum(n for _, n in batches) == 22


CHILD = """
import resource, sys
import numpy as np
from faceswap_gan.config import PRESETS
from faceswap_gan.models.gan import FaceSwapGAN

def status(key):  # kB of /proc/self/status: VmHWM = peak RSS, VmSize = virtual
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

count = int(sys.argv[1])
model = FaceSwapGAN(PRESETS["tiny"])
rng = np.random.default_rng(0)
faces = rng.uniform(-1, 1, (count, 64, 64, 3)).astype(np.float32)
model.transform(faces[:8], "A")  # warm: traced, one batch of 8 run
before = status("VmHWM")
# A safety net for this machine: more than 3 GB of new address space fails here
# instead of swapping or waking the OOM killer (one pass over all faces needs more).
limit = status("VmSize") + 3 * 10**9
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
model.transform(faces, "A")
print("GROWTH", (status("VmHWM") - before) / 1e9)
"""


@pytest.mark.slow
def test_peak_memory_of_transform_does_not_grow_with_the_faces(tmp_path):
    """A fresh process (its own peak RSS, VmHWM: `ru_maxrss` of a child started by
    this TensorFlow-sized test process would include this process's peak) runs the
    tiny model (self-attention at 64x64: 2 x 64 MiB per face in one pass) on 40
    faces after a warm-up batch of 8: the peak must not grow by more than 0.5 GB
    (one pass over the 40 faces adds about 5 GB)."""
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD))
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, str(script), "40"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [x for x in done.stdout.splitlines() if x.startswith("GROWTH")]
    assert done.returncode == 0 and lines, done.stderr[-2000:]
    assert float(lines[0].split()[1]) < 0.5


def test_load_faces_keeps_only_model_size_faces(tmp_path, faces_a, faces_b):
    """32 real 256 px crops (and eye masks) are read one at a time: the peak of
    Python-visible allocations stays near N x 64 x 64 x 3 bytes, not N 256 px crops,
    and the arrays equal those FaceSet + resize_faces made."""
    folder, masks = tmp_path / "faces", tmp_path / "masks"
    folder.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(0)
    for source in (faces_a, faces_b):
        for path in list_images(source):
            shutil.copyfile(path, folder / f"{source.name}_{path.name}")
            mask = (rng.random((40, 40)) > 0.7).astype(np.uint8) * 255
            mask = cv2.resize(mask, (256, 256), interpolation=cv2.INTER_NEAREST)
            cv2.imwrite(str(masks / f"{source.name}_{path.stem}.png"), mask)
    count = len(list_images(folder))
    tracemalloc.start()
    data = face_eval.load_faces(folder, 64, masks)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert data.faces.shape == (count, 64, 64, 3) and data.faces.dtype == np.uint8
    assert data.eye_masks.shape == (count, 64, 64) and data.masks_from == "folder"
    one_crop = 256 * 256 * 3
    assert peak < count * (64 * 64 * 3 + 64 * 64 * 4) + 6 * one_crop  # base: > 12 MB
    old = FaceSet(folder, masks)
    np.testing.assert_array_equal(data.faces, resize_faces(old.images, 64))
    old_masks = resize_faces(old.masks.astype(np.float32) / 255.0, 64)
    np.testing.assert_array_equal(data.eye_masks, old_masks)
    assert data.names == [p.name for p in old.paths]
    first = face_eval.load_faces(folder, 64, max_faces=5)
    assert len(first.faces) == 5 and first.masks_from == "landmarks"
    np.testing.assert_array_equal(first.faces, data.faces[:5])


def test_nearest_retrieval_does_not_hold_a_query_by_gallery_by_dim_array():
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(300, 192))
    galleries = {"A": rng.normal(size=(300, 192)), "B": rng.normal(size=(200, 192))}
    tracemalloc.start()
    found = metrics.retrieve(queries, galleries, "nearest")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8e6  # one (N, M, D) float64 array alone is 138 MB
    unit = {
        k: v / np.linalg.norm(v, axis=1, keepdims=True) for k, v in galleries.items()
    }
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    best = np.stack([(q @ unit[k].T).max(axis=1) for k in ("A", "B")], axis=1)
    assert found == [("A", "B")[i] for i in best.argmax(axis=1)]


@pytest.mark.slow
def test_evaluate_runs_every_network_in_bounded_batches(
    model, embedder, faces_a, faces_b, tmp_path, batches, monkeypatch
):
    """evaluate on 16 real faces per person: the generator and the landmark net
    (Keras predict_on_batch) and the identity embedder never see more than the
    batch; the grid shows the 4 best and 4 worst swaps of each direction."""
    embedded = spy_embed(monkeypatch, embedder)
    grids = []
    original = eval_report.plots.best_worst_grid

    def grid(cases, path, k=4):
        grids.append({d: [len(x) for x in case] for d, case in cases.items()})
        return original(cases, path, k)

    monkeypatch.setattr(eval_report.plots, "best_worst_grid", grid)
    report = eval_report.evaluate(model, faces_a, faces_b, tmp_path, embedder=embedder)
    assert report["faces"] == {"A": 16, "B": 16}
    assert report["eye_masks_from"] == {"A": "landmarks", "B": "landmarks"}
    assert set(report["reconstruction"]["A"]) == {"whole", "alpha", "eyes", "composite"}
    assert max(n for _, n in batches) == INFERENCE_BATCH  # 16 faces: 2 batches
    assert len({name for name, _ in batches}) >= 3  # decoders A, B; landmark net
    assert embedded and max(embedded) <= INFERENCE_BATCH
    assert grids == [{"AtoB": [8, 8, 8], "BtoA": [8, 8, 8]}]
    assert len(report["per_face"]["A"]) == 16
    assert (tmp_path / "grid_best_worst.png").stat().st_size > 1000


def test_grid_keeps_only_the_best_and_worst_faces(model, real_faces):
    faces = ((real_faces + 1) * 127.5).round().astype(np.uint8)
    margins = np.linspace(-1, 1, len(faces))[::-1].copy()
    inputs, swaps, kept = eval_report._grid_case(model, faces, "A", margins, k=2)
    np.testing.assert_array_equal(kept, margins[[0, 1, 10, 9]])
    np.testing.assert_array_equal(inputs, faces[[0, 1, 10, 9]])
    np.testing.assert_array_equal(
        swaps, face_eval.swap_faces(model, faces, "A")[[0, 1, 10, 9]]
    )


def test_video_identity_embeds_in_bounded_batches(
    tmp_path, embedder, faces_b, monkeypatch
):
    from faceswap_gan.demo import SAMPLE_A
    from faceswap_gan.evaluation.identity_video import swap_identity_per_frame

    embedded = spy_embed(monkeypatch, embedder)
    targets = np.stack([read_image(p) for p in list_images(faces_b)])  # 16 crops
    result = swap_identity_per_frame(
        SAMPLE_A, SAMPLE_A, targets, embedder, max_frames=10
    )
    assert result.frames == 10 and len(result.source) == len(result.indices) >= 8
    np.testing.assert_allclose(result.source, result.swapped, atol=1e-6)
    assert max(embedded) <= INFERENCE_BATCH and sum(embedded) == 16 + 2 * len(
        result.indices
    )
