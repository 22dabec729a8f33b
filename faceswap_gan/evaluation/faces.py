"""Face-level evaluation of a FaceSwapGAN: reconstruction, identity, attributes.

All faces are evaluated at the model's input size S (`model.image_size`): crops of
any size are resized with `cv2.INTER_AREA`, as the trainer's previews do. Swapped
faces are the masked composites `alpha * rgb + (1 - alpha) * input` that
`FaceSwapGAN.swap` returns and the converter pastes into frames.

Identity is scored with an embedder from
`faceswap_gan.faces.identity.build_identity_embedder`: by default MobileFaceNet
(ArcFace-type, 192-d), which training never sees. The "face_api" embedder (dlib's
ResNet) is the network of the perceptual loss, so scoring swaps with it is biased
towards the generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceswap_gan.errors import FaceswapError
from faceswap_gan.evaluation import geometry, metrics
from faceswap_gan.images import from_model_range, resize_faces, to_model_range

SIDES = {"A": "B", "B": "A"}  # person -> the other person
DIRECTIONS = {"A": "AtoB", "B": "BtoA"}  # person whose faces are swapped -> direction


@dataclass
class FaceData:
    """One person's evaluation faces at the model size.

    Attributes:
        faces: `(N, S, S, 3)` uint8 RGB.
        eye_masks: `(N, S, S)` float32 in [0, 1] (from the masks folder, or from the
            68 landmarks with `faceswap_gan.faces.masks.eye_mask`).
        names: list[str]. File names, in the order of `faces`.
        masks_from: str. "folder" or "landmarks".
    """

    faces: np.ndarray
    eye_masks: np.ndarray | None
    names: list
    masks_from: str = "folder"


def load_faces(folder, size: int, mask_folder=None, max_faces=None) -> FaceData:
    """Reads a folder of face crops (and eye masks) through `dataset.FaceSet`.

    Args:
        folder: str | Path. Face crops (any size; aligned crops or loose crops).
        size: int. The model size S.
        mask_folder: str | Path | None. Eye masks matched by file stem.
        max_faces: int | None. Keep the first N faces (by file name).

    Returns:
        FaceData with `eye_masks` None when no mask folder is given.

    Raises:
        FileNotFoundError, ValueError: as `FaceSet` (missing folder, no images, a
            missing mask); ValueError for `max_faces < 1`.
    """
    from faceswap_gan.dataset import FaceSet

    if max_faces is not None and int(max_faces) < 1:
        raise FaceswapError(f"max_faces must be >= 1 or None; got {max_faces!r}.")
    face_set = FaceSet(folder, mask_folder)
    keep = slice(None, None if max_faces is None else int(max_faces))
    masks = None
    if face_set.masks is not None:
        masks = resize_faces(face_set.masks[keep].astype(np.float32) / 255.0, size)
    names = [p.name for p in face_set.paths[keep]]
    return FaceData(resize_faces(face_set.images[keep], size), masks, names)


def detect_landmarks(detector, faces: np.ndarray) -> np.ndarray:
    """68 landmarks of one face per crop, in two passes (as both identity embedders).

    The landmark net expects a detector-style box, so the whole crop is used first and
    then a square box of 1.1x the side of the found points
    (`faceswap_gan.faces.identity.refined_landmarks`).

    Args:
        detector: `faceswap_gan.faces.landmarks.LandmarkDetector`.
        faces: `(N, S, S, 3)` uint8 RGB crops.

    Returns:
        `(N, 68, 2)` float32 (x, y) pixels in the crops.
    """
    from faceswap_gan.faces.identity import refined_landmarks

    return refined_landmarks(detector, faces)


def eye_masks_from_landmarks(landmarks: np.ndarray, size: int) -> np.ndarray:
    """`(N, 68, 2)` landmarks -> `(N, size, size)` eye masks (prep_binary_masks)."""
    from faceswap_gan.faces.masks import eye_mask

    return np.stack([eye_mask(points, (size, size)) for points in landmarks])


def _image_scores(targets, predictions, masks=None) -> dict:
    """Per-face l1/psnr/ssim lists; images `(N, S, S, 3)` in [0, 1]."""
    masks = [None] * len(targets) if masks is None else masks
    rows = [
        (
            metrics.masked_l1(t, p, m),
            metrics.masked_psnr(t, p, m),
            metrics.masked_ssim(t, p, m),
        )
        for t, p, m in zip(targets, predictions, masks, strict=True)
    ]
    return {name: [r[i] for r in rows] for i, name in enumerate(("l1", "psnr", "ssim"))}


def reconstruction(model, data: FaceData, person: str) -> dict:
    """A->A (or B->B) reconstruction scores per face.

    The raw generator RGB is compared with the input on the whole crop, weighted by
    the generator's alpha mask, and inside the eye masks; the masked composite is
    compared on the whole crop (the original's "swap consistency").

    Args:
        model: FaceSwapGAN.
        data: FaceData of `person` at the model size.
        person: "A" or "B" (selects the decoder).

    Returns:
        {"whole"|"alpha"|"eyes"|"composite": {"l1"|"psnr"|"ssim": list of N floats}}
        (values in [0, 1] images; PSNR in dB); "eyes" only with eye masks.
    """
    inputs = to_model_range(data.faces)
    alpha, rgb, composite = model.transform(inputs, person)
    target, rgb = metrics.to_unit_range(inputs), metrics.to_unit_range(rgb)
    scores = {
        "whole": _image_scores(target, rgb),
        "alpha": _image_scores(target, rgb, alpha),
        "composite": _image_scores(target, metrics.to_unit_range(composite)),
    }
    if data.eye_masks is not None:
        scores["eyes"] = _image_scores(target, rgb, data.eye_masks)
    return scores


def alpha_coverage(model, faces: np.ndarray, decoder: str) -> np.ndarray:
    """Mean alpha per face of `decoder` ("A"/"B") on `(N, S, S, 3)` uint8 faces.

    Returns:
        `(N,)` float in [0, 1]: the share of the crop the generator paints. Near 0
        the composite is the input unchanged (early training drives alpha to 0
        before the faces are learnt), so identity and landmark figures then
        describe the input, not a swap.
    """
    alpha, _, _ = model.transform(to_model_range(faces), decoder)
    return alpha.mean(axis=(1, 2, 3))


def swap_faces(model, faces: np.ndarray, person: str) -> np.ndarray:
    """Swaps `(N, S, S, 3)` uint8 faces of `person` -> uint8 masked composites."""
    _, _, composite = model.swap(to_model_range(faces), DIRECTIONS[person])
    return from_model_range(composite)


def identity(embeddings: dict, person: str) -> dict:
    """Identity scores of one swap direction from precomputed embeddings.

    Args:
        embeddings: {"A": (N_A, D) real A, "B": (N_B, D) real B,
            "swap_A": (N_A, D) swaps of A's faces, "swap_B": ...}, from one identity
            embedder (D = 192 for "mobilefacenet", 128 for "face_api"; compared by
            cosine, so either works).
        person: whose faces were swapped ("A": direction AtoB).

    Returns:
        {"margin": (N,) cos to the other's centroid - cos to `person`'s,
         "real_margin": (N,) the same margin for `person`'s real faces towards their
         own identity (a reference; each face is part of its own centroid),
         "retrieved_centroid": labels, "retrieved_nearest": labels}.
    """
    other = SIDES[person]
    centroids = {k: metrics.centroid(embeddings[k]) for k in ("A", "B")}
    swaps = embeddings[f"swap_{person}"]
    galleries = {k: embeddings[k] for k in ("A", "B")}
    return {
        "margin": metrics.identity_margin(swaps, centroids[other], centroids[person]),
        "real_margin": metrics.identity_margin(
            embeddings[person], centroids[person], centroids[other]
        ),
        "retrieved_centroid": metrics.retrieve(swaps, galleries, "centroid"),
        "retrieved_nearest": metrics.retrieve(swaps, galleries, "nearest"),
    }


def attributes(input_points: np.ndarray, swap_points: np.ndarray, size: int) -> dict:
    """Landmark error and head-pose difference between inputs and their swaps.

    Args:
        input_points: `(N, 68, 2)` landmarks of the input faces (S-pixel crops).
        swap_points: `(N, 68, 2)` landmarks of their swaps.
        size: int. S.

    Returns:
        {"landmark_error": (N,) normalised by inter-ocular distance,
         "pose_difference_deg": (N,) degrees}.
    """
    pose = [
        geometry.pose_difference(p, q, (size, size))
        for p, q in zip(input_points, swap_points, strict=True)
    ]
    return {
        "landmark_error": geometry.landmark_error(input_points, swap_points),
        "pose_difference_deg": np.asarray(pose),
    }


SATURATION = 0.99  # |RGB| beyond this in [-1, 1]: tanh's flat tails.


def saturated_fraction(rgb: np.ndarray) -> float:
    """Share of `(..., 3)` RGB values in [-1, 1] beyond +-0.99 (0 to 1): near 1 the
    generator paints flat saturated colour, where tanh's gradient vanishes."""
    return float(np.mean(np.abs(np.asarray(rgb)) > SATURATION))


def evaluate_periodic(model, held_out_a, held_out_b, embedder) -> dict:
    """Quality figures for logging during training, on a fixed held-out face set.

    For each direction ("AtoB": A's faces through decoder B), identity is scored by
    cosine similarity to the centroids of the given real faces of A and of B, for the
    raw generator RGB and for the alpha composite (what a conversion pastes).

    Args:
        model: FaceSwapGAN (training or not).
        held_out_a: `(N_A, S, S, 3)` float32 RGB in [-1, 1] faces of A at model size
            (N_A >= 1; about 8 is enough).
        held_out_b: the same for B.
        embedder: an identity embedder, built once with
            `faceswap_gan.faces.identity.build_identity_embedder` (default backend
            "mobilefacenet"; "face_api" shares its network with the perceptual loss,
            so its margins of swaps are biased upwards).

    Returns:
        dict of floats:
        - "eval/psnr_A", "eval/psnr_B": mean PSNR (dB) of the A->A / B->B raw
          generator RGB against the input, whole crop;
        - "eval/masked_psnr_A", "eval/masked_psnr_B": the same inside the alpha mask
          (NaN faces, alpha all 0, are skipped);
        - per direction D in ("AtoB", "BtoA"):
          "eval/saturated_D" (share of raw RGB values beyond +-0.99),
          "eval/alpha_mean_D" (mean alpha), "eval/alpha_coverage_D" (share of pixels
          with alpha > 0.5),
          "eval/id_raw_target_D", "eval/id_raw_source_D" (mean cosine of the raw RGB
          swaps to the target's / source's centroid),
          "eval/id_swap_target_D", "eval/id_swap_source_D" (the same for the
          composites), "eval/id_real_target_D" (the source faces themselves to the
          target's centroid: the baseline a swap must beat),
          "eval/identity_margin_D" (composite: target - source).
    """
    real = {
        "A": np.asarray(held_out_a, np.float32),
        "B": np.asarray(held_out_b, np.float32),
    }
    embedded_real = {k: embedder.embed(from_model_range(v)) for k, v in real.items()}
    centroids = {k: metrics.centroid(v) for k, v in embedded_real.items()}
    out = {}
    for person in ("A", "B"):
        alpha, rgb, _ = model.transform(real[person], person)
        target, rgb = metrics.to_unit_range(real[person]), metrics.to_unit_range(rgb)
        out[f"eval/psnr_{person}"] = float(
            np.mean([metrics.masked_psnr(t, p) for t, p in zip(target, rgb)])
        )
        psnr = [
            metrics.masked_psnr(t, p, m)
            for t, p, m in zip(target, rgb, alpha, strict=True)
        ]
        out[f"eval/masked_psnr_{person}"] = float(np.nanmean(psnr))
    for person in ("A", "B"):
        direction, other = DIRECTIONS[person], SIDES[person]
        alpha, rgb, composite = model.swap(real[person], direction)
        out[f"eval/saturated_{direction}"] = saturated_fraction(rgb)
        out[f"eval/alpha_mean_{direction}"] = float(alpha.mean())
        out[f"eval/alpha_coverage_{direction}"] = float(np.mean(alpha > 0.5))
        for kind, images in (("raw", rgb), ("swap", composite)):
            embedded = embedder.embed(from_model_range(images))
            for role, who in (("target", other), ("source", person)):
                cos = metrics.cosine_similarity(embedded, centroids[who])
                out[f"eval/id_{kind}_{role}_{direction}"] = float(np.mean(cos))
        out[f"eval/id_real_target_{direction}"] = float(
            np.mean(metrics.cosine_similarity(embedded_real[person], centroids[other]))
        )
        out[f"eval/identity_margin_{direction}"] = (
            out[f"eval/id_swap_target_{direction}"]
            - out[f"eval/id_swap_source_{direction}"]
        )
    return out
