"""FaceTransformer: aligned face crops -> swapped crops, alpha masks and raw outputs.

As faceswap-GAN v2.2 `converter/face_transformer.py` (REFERENCE 1.7 step 5): crop the
ROI by `roi_coverage`, resize it to the model's resolution, run the generator, resize
alpha and RGB back, colour-correct against the original ROI, and blend with a feathered
ROI mask. Differences: the faces of one frame, or of several (`transform_many`), go
through the generator as one batch; RGB throughout (the original fed BGR); colour
statistics are taken inside the face region (the generator's alpha) rather than the
whole square; the colour-corrected RGB is blended once with the combined mask
`alpha * feather [* part mask]` (the original corrected the already-blended image,
which also shifted background pixels); and a `SegmentationType` other than ALL lets
only the chosen face parts take swapped pixels (the alvinahmadov/faceswap-parts fork).
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np

from converter.blending import composite, feather_mask, roi_bounds
from converter.color import COLOR_CORRECTIONS
from converter.config import ConverterConfig, SegmentationType
from faceswap_gan.images import from_model_range, resize_face, to_model_range


class FaceTransformer:
    """Swaps aligned face crops with a trained `FaceSwapGAN`.

    Args:
        model: a `faceswap_gan` `FaceSwapGAN` (anything with `image_size` and
            `swap(faces, direction) -> (alpha, rgb, masked)` as in docs: faces
            `(B, S, S, 3)` float32 [-1, 1] RGB, alpha `(B, S, S, 1)` [0, 1]).
        config: ConverterConfig. Uses `roi_coverage`, `color_correction`, `direction`,
            `segmentation`.

    Attributes:
        seconds: dict[str, float]. Accumulated wall time of the "generator", "colour"
            and "blend" stages over all `transform` calls.
    """

    def __init__(self, model, config: ConverterConfig):
        self.model, self.config = model, config
        self.correct = COLOR_CORRECTIONS[config.color_correction]
        self.seconds: dict[str, float] = defaultdict(float)

    def transform(
        self, aligned_crops: np.ndarray, part_masks: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Swaps a batch of aligned crops (all faces of one frame).

        Args:
            aligned_crops: `(N, S, S, 3)` uint8 RGB, aligned with
                `faceswap_gan.faces.alignment.align` (any S >= 8; resized for the
                model). `VideoConverter` aligns each face on its raw detected
                landmarks, as v2.2; the ROI is cut from these aligned crops here.
            part_masks: `(N, S, S)` float32 [0, 1] masks of the chosen face parts in
                crop pixels (`faces.masks.part_mask`); required unless segmentation
                is ALL, ignored when it is ALL.

        Returns:
            result: `(N, S, S, 3)` uint8 RGB, the crops with the swapped face blended
                in.
            alpha: `(N, S, S)` float32 [0, 1], where `result` takes swapped pixels
                (generator alpha x feathered ROI mask [x part mask]; 0 outside the ROI).
            raw: `(N, S, S, 3)` uint8 RGB, the colour-corrected generator output in the
                ROI, the input crop outside it (so `alpha * raw + (1 - alpha) * crop`
                equals `result` up to rounding).

        Raises:
            ValueError: bad crop shape/dtype, or missing/mis-shaped part masks.
        """
        return self.transform_many([(aligned_crops, part_masks)])[0]

    def transform_many(
        self, groups: list[tuple[np.ndarray, np.ndarray | None]]
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """`transform` of several frames' faces, with one generator pass for all.

        The faces of all groups go through `model.swap` together (at most its
        `INFERENCE_BATCH` per forward pass), which runs the network on fuller
        batches than one frame's faces; each face's result equals `transform` of
        its own group up to float rounding of the batched forward pass.

        Args:
            groups: list of `(aligned_crops, part_masks)`, one per frame, each as
                `transform`'s arguments; the crop size S may differ between groups.

        Returns:
            list of `(result, alpha, raw)`, one per group, as `transform` returns.

        Raises:
            ValueError: as `transform`, for any group.
        """
        checked = []
        for aligned_crops, part_masks in groups:
            crops = np.asarray(aligned_crops)
            if (
                crops.ndim != 4
                or crops.shape[3] != 3
                or crops.shape[1] != crops.shape[2]
                or crops.dtype != np.uint8
            ):
                raise ValueError(
                    f"aligned_crops must be (N, S, S, 3) uint8 RGB; got {crops.shape} "
                    f"{crops.dtype}."
                )
            checked.append((crops, self._check_part_masks(part_masks, crops.shape[:3])))
        generated = self._generate([crops for crops, _ in checked])
        return [
            self._blend(crops, parts, alphas, rgbs)
            for (crops, parts), (alphas, rgbs) in zip(checked, generated)
        ]

    def _generate(self, groups: list[np.ndarray]) -> list[tuple]:
        """Generator output of each group's ROIs, from one `model.swap` call.

        Returns, per group of `(N, S, S, 3)` crops, alphas `(N, R, R)` float32
        [0, 1] and RGBs `(N, R, R, 3)` float32 [0, 1], R the ROI side of S.
        """
        tic = time.perf_counter()
        rois = []  # Per group: (N, R, R, 3) uint8, the ROI of each crop.
        for crops in groups:
            start, stop = roi_bounds(crops.shape[1], self.config.roi_coverage)
            rois.append(crops[:, start:stop, start:stop])
        inputs = [resize_face(roi, self.model.image_size) for g in rois for roi in g]
        if inputs:
            alpha_m, rgb_m, _ = self.model.swap(
                to_model_range(np.stack(inputs)), self.config.direction.name
            )
        outputs, first = [], 0
        for group in rois:
            count, roi_size = group.shape[0], group.shape[1]
            alphas = np.zeros((count, roi_size, roi_size), np.float32)
            rgbs = np.zeros((count, roi_size, roi_size, 3), np.float32)
            for i in range(count):
                alpha = np.asarray(alpha_m[first + i][..., 0], np.float32)
                alphas[i] = np.clip(resize_face(alpha, roi_size), 0.0, 1.0)
                rgb = resize_face(from_model_range(rgb_m[first + i]), roi_size)
                rgbs[i] = rgb.astype(np.float32) / 255.0
            outputs.append((alphas, rgbs))
            first += count
        self.seconds["generator"] += time.perf_counter() - tic
        return outputs

    def _blend(self, crops, parts, alphas, rgbs):
        """Colour-corrects one group's generator output and blends it into its
        crops; returns `transform`'s `(result, alpha, raw)`."""
        if crops.shape[0] == 0:
            empty = np.zeros(crops.shape[:3], np.float32)
            return crops.copy(), empty, crops.copy()
        start, stop = roi_bounds(crops.shape[1], self.config.roi_coverage)
        tic = time.perf_counter()
        originals = crops[:, start:stop, start:stop].astype(np.float32) / 255.0
        corrected = np.stack(
            [
                self.correct(rgb, original, alpha)
                for rgb, original, alpha in zip(rgbs, originals, alphas)
            ]
        )
        self.seconds["colour"] += time.perf_counter() - tic

        tic = time.perf_counter()
        blend = alphas * feather_mask(stop - start, self.config.roi_coverage)
        if parts is not None:
            blend = blend * parts[:, start:stop, start:stop]
        alpha = np.zeros(crops.shape[:3], np.float32)
        alpha[:, start:stop, start:stop] = blend
        raw = crops.copy()
        raw[:, start:stop, start:stop] = np.rint(corrected * 255.0).astype(np.uint8)
        mixed = composite(raw.astype(np.float32), crops.astype(np.float32), alpha)
        result = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
        self.seconds["blend"] += time.perf_counter() - tic
        return result, alpha, raw

    def _check_part_masks(self, part_masks, shape) -> np.ndarray | None:
        if self.config.segmentation == SegmentationType.ALL:
            return None
        if part_masks is None:
            raise ValueError(
                f"segmentation={self.config.segmentation.name} needs part_masks "
                "(N, S, S) float32 [0, 1] from faceswap_gan.faces.masks.part_mask."
            )
        part_masks = np.asarray(part_masks, np.float32)
        if part_masks.shape != tuple(shape):
            raise ValueError(
                f"part_masks must have shape {tuple(shape)}; got {part_masks.shape}."
            )
        return np.clip(part_masks, 0.0, 1.0)
