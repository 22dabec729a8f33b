"""Face folders in, an endless `tf.data` stream of augmented training batches out.

`FaceSet` loads one person's faces (and optional eye masks) into memory as 256x256
uint8 (the original resized every face to 256 too; about 192 KiB per face, 64 KiB per
mask). `make_dataset` streams

    (warped, target, eye_mask)  # (B, S, S, 3), (B, S, S, 3) float32 in [-1, 1] RGB,
                                # (B, S, S, 1) float32 in [0, 1]

built as `Dataset.range(start_index, 2**62) -> map(numpy augment, parallel,
deterministic) -> batch(drop_remainder) -> prefetch`. Under a `tf.distribute`
strategy each input pipeline (one per worker) maps only the sample indices of its own
replicas (`replicas`, `replica_ids`), so no worker augments another's faces.

Resumable randomness: sample `k` (k counts samples from the start of training) is a
pure function of `(seed, k)`. Its face is `permutation(n)[k % n]` with the permutation
drawn by `np.random.default_rng([seed, k // n])` (a fresh shuffle every epoch), and
its augmentation draws from `np.random.default_rng([seed, k, 1])`. A trainer that
has consumed `i` batches resumes the exact stream with `start_index = i * batch_size`.

Reference:
    - shaoanlu/faceswap-GAN v2.2, `data_loader/data_loader.py` (`DataLoader`) and
      `data_augmentation.py::read_image`.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

from faceswap_gan.augmentation import FACE_SIZE, AugmentConfig, augment
from faceswap_gan.errors import FaceswapError
from faceswap_gan.images import (
    IMAGE_EXTENSIONS,
    ImageReadPolicy,
    list_images,
    read_mask,
    resize_face,
    to_model_range,
)

_END_INDEX = 2**62  # "Forever": 4.6e18 samples.
_AUGMENT_STREAM = 1  # Third seed word of the per-sample augmentation rng.


def _names(paths, limit: int) -> str:
    shown = ", ".join(p.name for p in paths[:limit])
    return shown + (f", ... ({len(paths)} in all)" if len(paths) > limit else "")


class FaceSet:
    """One person's face crops (and eye masks), resized to 256x256, held in memory.

    Masks are matched to faces by file-name stem, so face `x.jpg` pairs with mask
    `x.png` as well as `x.jpg` (the original required the same file name, which this
    accepts too). Extra masks without a face are ignored.

    Attributes:
        folder: Path. The face folder.
        mask_folder: Path | None. The eye-mask folder.
        paths: list[Path]. The loaded face files, sorted by name.
        images: `(N, 256, 256, 3) uint8` RGB.
        masks: `(N, 256, 256) uint8` (255 = eye) or None without a mask folder.
        skipped: list[Path]. Unreadable faces (or faces with unreadable masks) that were
            left out; one `images.UnreadableImageWarning` counts and names the
            unreadable files (`images.ImageReadPolicy`: corrupt, truncated JPEGs, not
            images).

    Args:
        folder: str | Path. Folder of faces in any format OpenCV reads (extensions
            `IMAGE_EXTENSIONS`), any size.
        mask_folder: str | Path | None. Folder of eye masks (grayscale or colour; any
            size), one per face, as written by `prep_binary_masks`.

    Raises:
        FileNotFoundError: a folder does not exist.
        FaceswapError: no images in `folder`, more than
            `images.MAX_UNREADABLE_SHARE` (10 %) of the faces (or masks) unreadable, a
            mask missing for some face, or two masks with the same stem.
    """

    def __init__(self, folder: str | Path, mask_folder: str | Path | None = None):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"Face folder not found: {self.folder}")
        self.mask_folder = None if mask_folder is None else Path(mask_folder)
        paths = list_images(self.folder)
        if not paths:
            raise FaceswapError(
                f"No face images in {self.folder}; accepted extensions: "
                f"{', '.join(IMAGE_EXTENSIONS)}."
            )
        mask_paths = (
            self._match_masks(paths) if self.mask_folder else [None] * len(paths)
        )
        images, masks, self.paths, self.skipped = [], [], [], []
        what = f"face images (or their eye masks) in {self.folder}"
        policy = ImageReadPolicy(len(paths), what)
        for path, mask_path in zip(paths, mask_paths, strict=True):
            image = policy.read(path)
            mask = None
            if image is not None and mask_path is not None:
                mask = policy.read(mask_path, read_mask)
                if mask is None:
                    image = None
            if image is None:
                self.skipped.append(path)
                continue
            images.append(_resize(image))
            masks.append(None if mask is None else _resize(mask))
            self.paths.append(path)
        policy.finish(stacklevel=2)
        self.images = np.stack(images)
        self.masks = None
        if self.mask_folder:
            self.masks = np.rint(np.stack(masks) * 255.0).astype(np.uint8)

    def _match_masks(self, paths: list[Path]) -> list[Path]:
        if not self.mask_folder.is_dir():
            raise FileNotFoundError(f"Eye-mask folder not found: {self.mask_folder}")
        by_stem: dict[str, Path] = {}
        for mask_path in list_images(self.mask_folder):
            if mask_path.stem in by_stem:
                raise FaceswapError(
                    f"Two masks share the name stem {mask_path.stem!r} in "
                    f"{self.mask_folder}: {by_stem[mask_path.stem].name}, "
                    f"{mask_path.name}. Keep one mask per face."
                )
            by_stem[mask_path.stem] = mask_path
        missing = [p for p in paths if p.stem not in by_stem]
        if missing:
            raise FaceswapError(
                f"{len(missing)} of {len(paths)} faces in {self.folder} have no eye "
                f"mask with the same name in {self.mask_folder}: {_names(missing, 5)}. "
                "Create the masks (prep_binary_masks) or train without a mask folder."
            )
        return [by_stem[p.stem] for p in paths]

    @classmethod
    def from_arrays(
        cls, images: np.ndarray, masks: np.ndarray | None = None
    ) -> FaceSet:
        """A FaceSet of in-memory faces (benchmarks, notebooks), nothing read from disk.

        Args:
            images: `(N, 256, 256, 3) uint8` RGB.
            masks: `(N, 256, 256) uint8` (255 = eye) or None.

        Raises:
            ValueError: wrong shapes or dtypes.
        """
        images = np.asarray(images)
        if (
            images.ndim != 4
            or images.shape[1:] != (FACE_SIZE, FACE_SIZE, 3)
            or images.dtype != np.uint8
            or not len(images)
        ):
            raise FaceswapError(
                "images must be (N, 256, 256, 3) uint8 with N >= 1; got "
                f"{images.shape} {images.dtype}."
            )
        if masks is not None and (
            np.shape(masks) != images.shape[:3] or np.asarray(masks).dtype != np.uint8
        ):
            raise FaceswapError(
                f"masks must be (N, 256, 256) uint8 matching {len(images)} "
                f"images; got {np.shape(masks)} {np.asarray(masks).dtype}."
            )
        faces = cls.__new__(cls)
        faces.folder, faces.mask_folder = Path("<arrays>"), None
        faces.paths, faces.skipped = [], []
        faces.images = images
        faces.masks = None if masks is None else np.asarray(masks)
        return faces

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return (
            f"FaceSet({str(self.folder)!r}, {len(self)} faces, "
            f"masks={self.masks is not None}, skipped={len(self.skipped)})"
        )


def _resize(image: np.ndarray) -> np.ndarray:
    """To the 256 px training size with INTER_LINEAR, as the original."""
    return resize_face(image, FACE_SIZE, cv2.INTER_LINEAR)


class _SampleFn:
    """`k -> (warped, target, eye_mask)` as a pure function of `(seed, k)`."""

    def __init__(self, faces, image_size, seed, config, color_references):
        self.images, self.masks = faces.images, faces.masks
        self.image_size, self.seed, self.config = image_size, seed, config
        self.color_references = color_references
        self._zero_mask = np.zeros((FACE_SIZE, FACE_SIZE), np.float32)
        self._permutations: dict[int, np.ndarray] = {}  # epoch -> order of the faces

    def _permutation(self, epoch: int) -> np.ndarray:
        # Parallel map calls may race here; both compute the same array, so that's fine.
        if epoch not in self._permutations:
            rng = np.random.default_rng([self.seed, epoch])
            self._permutations = {
                **{e: p for e, p in self._permutations.items() if e >= epoch - 1},
                epoch: rng.permutation(len(self.images)),
            }
        return self._permutations[epoch]

    def __call__(self, k) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = int(k)
        index = self._permutation(k // len(self.images))[k % len(self.images)]
        mask = self._zero_mask
        if self.masks is not None:
            mask = self.masks[index].astype(np.float32) / 255.0
        rng = np.random.default_rng([self.seed, k, _AUGMENT_STREAM])
        return augment(
            to_model_range(self.images[index]),
            mask,
            rng,
            self.image_size,
            self.config,
            self.color_references,
        )


def make_dataset(
    faces: FaceSet,
    image_size: int,
    batch_size: int,
    seed: int,
    config: AugmentConfig | None = None,
    color_references: np.ndarray | None = None,
    start_index: int = 0,
    *,
    replicas: int = 1,
    replica_ids: range | None = None,
) -> tf.data.Dataset:
    """An endless, resumable stream of augmented `(warped, target, eye_mask)` batches.

    Element structure: `(warped, target, eye_mask)` with shapes `(B, S, S, 3)`,
    `(B, S, S, 3)` float32 RGB in `[-1, 1]` and `(B, S, S, 1)` float32 in `[0, 1]`,
    `B = batch_size`, `S = image_size`. Sample `k` (from `start_index` on) depends on
    `(seed, k)` only (see the module docstring), so `start_index = batches_done *
    batch_size` resumes a stream exactly.

    Args:
        faces: FaceSet. One person's faces.
        image_size: int. Model input side, a positive multiple of 8 (64, 128, 256).
        batch_size: int. At least 1 and at most `len(faces)`.
        seed: int >= 0.
        config: AugmentConfig | None (None = defaults). With `use_bm_eyes` but no
            masks in `faces`, the masks are zeros and a warning says so (as the
            original).
        color_references: `(N, 256, 256, 3)` uint8 RGB (or float32 in `[-1, 1]`)
            pool of colour-match references; the original uses the faces of A and B:
            `np.concatenate([faces_a.images, faces_b.images])`. None: `faces.images`.
        start_index: int >= 0. Index of the first sample.
        replicas: int >= 1 dividing `batch_size`. For a distributed step
            (`tf.distribute`): each global batch of `batch_size` consecutive
            samples is cut into `replicas` per-replica batches of
            `batch_size // replicas`, replica r getting samples r*b .. r*b + b - 1
            of it (b = `batch_size // replicas`).
        replica_ids: range of consecutive replica indices in [0, replicas), or
            None (all). Only these replicas' samples are augmented, and the stream
            yields their per-replica batches in order, global batch after global
            batch: what one input pipeline of
            `tf.distribute.Strategy.distribute_datasets_from_function` must give
            its local replicas. With the defaults the stream is the plain one.
            Every pipeline computes its own samples only, and the pipelines
            together make exactly the global batches of the one-device stream.

    Returns:
        tf.data.Dataset, infinite (2**62 samples), batched with drop_remainder
        (`batch_size // replicas` per element), prefetched.

    Raises:
        ValueError: a bad size, batch size, seed, start index, replica split or
            reference pool, or fewer faces than one batch.
    """
    _check_arguments(faces, image_size, batch_size, seed, start_index)
    replica_ids = _check_replicas(batch_size, replicas, replica_ids)
    config = AugmentConfig() if config is None else config
    if color_references is None:
        color_references = faces.images
    color_references = np.asarray(color_references)
    if color_references.ndim != 4 or color_references.shape[1:] != (
        FACE_SIZE,
        FACE_SIZE,
        3,
    ):
        raise FaceswapError(
            "color_references must be (N, 256, 256, 3) with N >= 1; got "
            f"{color_references.shape}."
        )
    if config.use_bm_eyes and faces.masks is None:
        warnings.warn(
            f"use_bm_eyes is on but {faces.folder} has no eye-mask folder: the eye "
            "masks are all zeros (no eye-weighted loss). Pass mask_folder to FaceSet "
            "or turn use_bm_eyes off.",
            stacklevel=2,
        )
    size = int(image_size)
    sample = _SampleFn(faces, size, int(seed), config, color_references)

    def load(k):
        warped, target, mask = tf.numpy_function(
            sample, [k], (tf.float32, tf.float32, tf.float32), stateful=False
        )
        return (
            tf.ensure_shape(warped, (size, size, 3)),
            tf.ensure_shape(target, (size, size, 3)),
            tf.ensure_shape(mask, (size, size, 1)),
        )

    per_replica = int(batch_size) // int(replicas)
    if len(replica_ids) == int(replicas):  # every sample, in order
        dataset = tf.data.Dataset.range(int(start_index), _END_INDEX)
    else:  # m-th sample of this pipeline: its slice of global batch m // length
        length = len(replica_ids) * per_replica
        first = int(start_index) + replica_ids[0] * per_replica
        total = int(batch_size)

        def sample_index(m):
            return first + (m // length) * total + m % length

        dataset = tf.data.Dataset.range(0, _END_INDEX // total).map(sample_index)
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(per_replica, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def _check_replicas(batch_size, replicas, replica_ids) -> range:
    """The replica range `make_dataset` feeds, checked; FaceswapError if invalid."""
    if not _is_int(replicas) or replicas < 1 or batch_size % replicas:
        raise FaceswapError(
            f"replicas must be an integer >= 1 that divides batch_size {batch_size}; "
            f"got {replicas!r}."
        )
    if replica_ids is None:
        return range(int(replicas))
    if (
        not isinstance(replica_ids, range)
        or replica_ids.step != 1
        or not len(replica_ids)
        or replica_ids.start < 0
        or replica_ids.stop > replicas
    ):
        raise FaceswapError(
            f"replica_ids must be a non-empty range(first, stop) within "
            f"[0, {replicas}); got {replica_ids!r}."
        )
    return replica_ids


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_arguments(faces, image_size, batch_size, seed, start_index) -> None:
    if not _is_int(image_size) or image_size <= 0 or image_size % 8:
        raise FaceswapError(
            "image_size must be a positive multiple of 8 (64, 128 or 256 "
            f"as the original); got {image_size!r}."
        )
    if not _is_int(batch_size) or batch_size < 1:
        raise FaceswapError(f"batch_size must be an integer >= 1; got {batch_size!r}.")
    if len(faces) < batch_size:
        raise FaceswapError(
            f"{faces.folder} has {len(faces)} usable face(s), fewer than one batch of "
            f"{batch_size}. Add faces or lower batch_size to at most {len(faces)}."
        )
    if not _is_int(seed) or seed < 0:
        raise FaceswapError(f"seed must be an integer >= 0; got {seed!r}.")
    if not _is_int(start_index) or not 0 <= start_index < _END_INDEX:
        raise FaceswapError(
            f"start_index must be an integer >= 0; got {start_index!r}."
        )


def measure_throughput(dataset: tf.data.Dataset, batches: int = 50) -> float:
    """Batches per second that `dataset` delivers, after one untimed warm-up batch.

    Args:
        dataset: tf.data.Dataset. At least `batches + 1` batches long.
        batches: int >= 1. Number of timed batches.

    Returns:
        float. Batches per second (wall clock).
    """
    if batches < 1:
        raise FaceswapError(f"batches must be >= 1; got {batches}.")
    iterator = iter(dataset)
    next(iterator)  # Warm-up: starts the pipeline's threads and fills the prefetch.
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches / (time.perf_counter() - start)
