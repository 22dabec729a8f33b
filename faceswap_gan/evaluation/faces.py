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

Memory is bounded: faces are read one by one and kept only at the model size
(N x S x S x 3 bytes), and every network (the generator, the landmark net, the
identity embedder) runs on at most `BATCH` faces at a time, so the peak memory of
`evaluate` hardly grows with the number of faces.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from faceswap_gan.errors import FaceswapError
from faceswap_gan.evaluation import geometry, metrics
from faceswap_gan.images import (
    IMAGE_EXTENSIONS,
    ImageReadPolicy,
    from_model_range,
    list_images,
    read_mask,
    to_model_range,
)

SIDES = {"A": "B", "B": "A"}  # person -> the other person
DIRECTIONS = {"A": "AtoB", "B": "BtoA"}  # person whose faces are swapped -> direction
# Faces per forward pass of every network here; as `models.gan.INFERENCE_BATCH` (not
# imported: that would load the model code for the metrics alone).
BATCH = 8
LOAD_SIZE = 256  # Faces are read at this size first, as `dataset.FaceSet` does.


def _chunks(count: int, batch_size: int):
    """Slices of `range(count)` of at most `batch_size` items."""
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size!r}.")
    for start in range(0, count, int(batch_size)):
        yield slice(start, min(start + int(batch_size), count))


@dataclass
class FaceData:
    """One person's evaluation faces at the model size.

    Attributes:
        faces: `(N, S, S, 3)` uint8 RGB.
        eye_masks: `(N, S, S)` float32 in [0, 1] from the masks folder, or None
            (evaluation then makes them from the 68 landmarks with
            `faceswap_gan.faces.masks.eye_mask`, a batch at a time).
        names: list[str]. File names, in the order of `faces`.
        masks_from: str. "folder" (`eye_masks` given) or "landmarks".
    """

    faces: np.ndarray
    eye_masks: np.ndarray | None
    names: list
    masks_from: str = "folder"


def _match_masks(folder: Path, mask_folder: Path, paths: list) -> list:
    """The eye mask of each face path, by file stem (as `dataset.FaceSet`)."""
    if not mask_folder.is_dir():
        raise FileNotFoundError(f"Eye-mask folder not found: {mask_folder}")
    by_stem: dict = {}
    for mask_path in list_images(mask_folder):
        if mask_path.stem in by_stem:
            raise FaceswapError(
                f"Two masks share the name stem {mask_path.stem!r} in {mask_folder}: "
                f"{by_stem[mask_path.stem].name}, {mask_path.name}. Keep one mask per "
                "face."
            )
        by_stem[mask_path.stem] = mask_path
    missing = [p for p in paths if p.stem not in by_stem]
    if missing:
        shown = ", ".join(p.name for p in missing[:5])
        raise FaceswapError(
            f"{len(missing)} of {len(paths)} faces in {folder} have no eye mask with "
            f"the same name in {mask_folder}: {shown}. Create the masks "
            "(prep_binary_masks) or evaluate without a mask folder."
        )
    return [by_stem[p.stem] for p in paths]


def _to_size(image: np.ndarray, size: int) -> np.ndarray:
    """One image as `dataset.FaceSet` then `resize_faces` make it: INTER_LINEAR to
    256 px, then INTER_AREA to `size`."""
    if image.shape[:2] != (LOAD_SIZE, LOAD_SIZE):
        image = cv2.resize(image, (LOAD_SIZE, LOAD_SIZE))
    if image.shape[:2] != (size, size):
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return image


def load_faces(folder, size: int, mask_folder=None, max_faces=None) -> FaceData:
    """Reads a folder of face crops (and eye masks) at the model size, one at a time.

    Each face is resized as `dataset.FaceSet` and `resize_faces` would (to 256 px,
    then INTER_AREA to `size`) as soon as it is read, so memory holds only
    `N x size x size x 3` bytes of faces (plus `N x size x size x 4` of masks), not
    N full-size crops. Unreadable files follow `images.ImageReadPolicy` (skipped with
    one warning; too many fail).

    Args:
        folder: str | Path. Face crops (any size; aligned crops or loose crops).
        size: int. The model size S.
        mask_folder: str | Path | None. Eye masks matched by file stem.
        max_faces: int | None. Keep the first N readable faces (by file name).

    Returns:
        FaceData with `eye_masks` None (and `masks_from` "landmarks") when no mask
        folder is given.

    Raises:
        FileNotFoundError: a folder does not exist.
        FaceswapError: no images, too many unreadable ones, a missing or duplicate
            mask, or `max_faces < 1`.
    """
    if max_faces is not None and int(max_faces) < 1:
        raise FaceswapError(f"max_faces must be >= 1 or None; got {max_faces!r}.")
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Face folder not found: {folder}")
    paths = list_images(folder)
    if not paths:
        raise FaceswapError(
            f"No face images in {folder}; accepted extensions: "
            f"{', '.join(IMAGE_EXTENSIONS)}."
        )
    mask_paths = [None] * len(paths)
    if mask_folder is not None:
        mask_paths = _match_masks(folder, Path(mask_folder), paths)
    wanted = len(paths) if max_faces is None else min(int(max_faces), len(paths))
    faces = np.zeros((wanted, size, size, 3), np.uint8)
    masks = None if mask_folder is None else np.zeros((wanted, size, size), np.float32)
    policy = ImageReadPolicy(
        len(paths), f"face images (or their eye masks) in {folder}"
    )
    names = []
    for path, mask_path in zip(paths, mask_paths, strict=True):
        if len(names) == wanted:
            break
        image = policy.read(path)
        mask = None
        if image is not None and mask_path is not None:
            mask = policy.read(mask_path, read_mask)
            if mask is None:
                continue
        if image is None:
            continue
        if masks is not None:
            # As FaceSet: stored as uint8 at 256 px, then scaled to [0, 1].
            mask = _to_size(mask, LOAD_SIZE)
            mask = np.rint(mask * 255.0).astype(np.uint8).astype(np.float32) / 255.0
            masks[len(names)] = _to_size(mask, size)
        faces[len(names)] = _to_size(image, size)
        names.append(path.name)
    policy.finish(stacklevel=2)
    if not names:
        raise FaceswapError(
            f"None of the {len(paths)} images in {folder} could be read (corrupt or "
            "unsupported files)."
        )
    count = len(names)
    if count < wanted:  # Some were unreadable: drop the unused rows.
        faces = faces[:count].copy()
        masks = None if masks is None else masks[:count].copy()
    return FaceData(faces, masks, names, "landmarks" if masks is None else "folder")


def detect_landmarks(
    detector, faces: np.ndarray, batch_size: int = BATCH
) -> np.ndarray:
    """68 landmarks of one face per crop, in two passes (as both identity embedders).

    The landmark net expects a detector-style box, so the whole crop is used first and
    then a square box of 1.1x the side of the found points
    (`faceswap_gan.faces.identity.refined_landmarks`), `batch_size` crops at a time.

    Args:
        detector: `faceswap_gan.faces.landmarks.LandmarkDetector`.
        faces: `(N, S, S, 3)` uint8 RGB crops.
        batch_size: int >= 1. Crops per forward pass.

    Returns:
        `(N, 68, 2)` float32 (x, y) pixels in the crops.
    """
    from faceswap_gan.faces.identity import refined_landmarks

    out = np.zeros((len(faces), 68, 2), np.float32)
    for part in _chunks(len(faces), batch_size):
        out[part] = refined_landmarks(detector, faces[part])
    return out


def eye_masks_from_landmarks(landmarks: np.ndarray, size: int) -> np.ndarray:
    """`(N, 68, 2)` landmarks -> `(N, size, size)` float32 eye masks in [0, 1]
    (prep_binary_masks)."""
    from faceswap_gan.faces.masks import eye_mask

    if len(landmarks) == 0:
        return np.zeros((0, size, size), np.float32)
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


def _reconstruction_scores(inputs, alpha, rgb, composite, eye_masks) -> dict:
    """`reconstruction`'s dict for one batch: inputs, rgb, composite in [-1, 1]."""
    target, rgb = metrics.to_unit_range(inputs), metrics.to_unit_range(rgb)
    scores = {
        "whole": _image_scores(target, rgb),
        "alpha": _image_scores(target, rgb, alpha),
        "composite": _image_scores(target, metrics.to_unit_range(composite)),
    }
    if eye_masks is not None:
        scores["eyes"] = _image_scores(target, rgb, eye_masks)
    return scores


def _extend(total: dict, part: dict) -> None:
    """Appends the lists of a nested score dict `part` to `total` (same keys)."""
    for key, value in part.items():
        if isinstance(value, dict):
            _extend(total.setdefault(key, {}), value)
        else:
            total.setdefault(key, []).extend(value)


def reconstruction(model, data: FaceData, person: str, batch_size: int = BATCH) -> dict:
    """A->A (or B->B) reconstruction scores per face, `batch_size` faces at a time.

    The raw generator RGB is compared with the input on the whole crop, weighted by
    the generator's alpha mask, and inside the eye masks; the masked composite is
    compared on the whole crop (the original's "swap consistency").

    Args:
        model: FaceSwapGAN.
        data: FaceData of `person` at the model size.
        person: "A" or "B" (selects the decoder).
        batch_size: int >= 1. Faces per forward pass.

    Returns:
        {"whole"|"alpha"|"eyes"|"composite": {"l1"|"psnr"|"ssim": list of N floats}}
        (values in [0, 1] images; PSNR in dB); "eyes" only with eye masks.
    """
    scores: dict = {}
    for part in _chunks(len(data.faces), batch_size):
        inputs = to_model_range(data.faces[part])
        alpha, rgb, composite = model.transform(inputs, person, batch_size)
        masks = None if data.eye_masks is None else data.eye_masks[part]
        _extend(scores, _reconstruction_scores(inputs, alpha, rgb, composite, masks))
    return scores


def alpha_coverage(
    model, faces: np.ndarray, decoder: str, batch_size: int = BATCH
) -> np.ndarray:
    """Mean alpha per face of `decoder` ("A"/"B") on `(N, S, S, 3)` uint8 faces.

    Runs `batch_size` faces per forward pass.

    Returns:
        `(N,)` float32 in [0, 1]: the share of the crop the generator paints. Near 0
        the composite is the input unchanged (early training drives alpha to 0
        before the faces are learnt), so identity and landmark figures then
        describe the input, not a swap.
    """
    out = np.zeros(len(faces), np.float32)
    for part in _chunks(len(faces), batch_size):
        alpha, _, _ = model.transform(to_model_range(faces[part]), decoder, batch_size)
        out[part] = alpha.mean(axis=(1, 2, 3))
    return out


def swap_faces(
    model, faces: np.ndarray, person: str, batch_size: int = BATCH
) -> np.ndarray:
    """Swaps `(N, S, S, 3)` uint8 faces of `person` -> `(N, S, S, 3)` uint8 masked
    composites, `batch_size` faces per forward pass."""
    out = np.zeros_like(faces, dtype=np.uint8)
    for part in _chunks(len(faces), batch_size):
        inputs = to_model_range(faces[part])
        _, _, composite = model.swap(inputs, DIRECTIONS[person], batch_size)
        out[part] = from_model_range(composite)
    return out


def score_faces(
    model, data: FaceData, person: str, embedder, batch_size: int = BATCH
) -> dict:
    """Everything `evaluate` measures per face of `person`, in one bounded pass.

    Each batch of at most `batch_size` faces goes through the landmark net, the
    generator of `person` (reconstruction, alpha coverage), the other generator (the
    swap, its alpha coverage), the identity embedder (faces and swaps) and the
    landmark net again (swaps); only per-face figures are kept, so memory does not
    grow with N beyond `data` itself and a few numbers per face. Eye masks come from
    `data.eye_masks`, else from the landmarks (`eye_masks_from_landmarks`).

    Args:
        model: FaceSwapGAN.
        data: FaceData of `person` at the model size S.
        person: "A" or "B" (their faces are reconstructed by decoder_`person` and
            swapped by the other decoder).
        embedder: an identity embedder (`faces.identity.build_identity_embedder`)
            whose `landmarks` detector is used for the landmarks.
        batch_size: int >= 1. Faces per forward pass of every network.

    Returns:
        {"reconstruction": as `reconstruction` (with "eyes"),
         "coverage_own": `(N,)` mean alpha of decoder_`person`,
         "coverage_swap": `(N,)` mean alpha of the other decoder,
         "landmarks": `(N, 68, 2)` float32 of the faces, "swap_landmarks": of the swaps,
         "embeddings": `(N, D)` float32 of the faces, "swap_embeddings": of the swaps}.
    """
    from faceswap_gan.faces.identity import embed_crops

    size, count, detector = model.image_size, len(data.faces), embedder.landmarks
    recon: dict = {}
    coverage = {k: np.zeros(count, np.float32) for k in ("own", "swap")}
    points = {k: np.zeros((count, 68, 2), np.float32) for k in ("real", "swap")}
    embedded: dict = {"real": [], "swap": []}
    for part in _chunks(count, batch_size):
        faces = data.faces[part]
        inputs = to_model_range(faces)
        points["real"][part] = detect_landmarks(detector, faces, batch_size)
        masks = data.eye_masks
        masks = (
            eye_masks_from_landmarks(points["real"][part], size)
            if masks is None
            else masks[part]
        )
        alpha, rgb, composite = model.transform(inputs, person, batch_size)
        _extend(recon, _reconstruction_scores(inputs, alpha, rgb, composite, masks))
        coverage["own"][part] = alpha.mean(axis=(1, 2, 3))
        alpha, _, composite = model.swap(inputs, DIRECTIONS[person], batch_size)
        coverage["swap"][part] = alpha.mean(axis=(1, 2, 3))
        swaps = from_model_range(composite)
        points["swap"][part] = detect_landmarks(detector, swaps, batch_size)
        for key, crops in (("real", faces), ("swap", swaps)):
            embedded[key].append(
                embed_crops(embedder, crops, batch_size, normalise=False)
            )
    return {
        "reconstruction": recon,
        "coverage_own": coverage["own"],
        "coverage_swap": coverage["swap"],
        "landmarks": points["real"],
        "swap_landmarks": points["swap"],
        "embeddings": np.concatenate(embedded["real"]),
        "swap_embeddings": np.concatenate(embedded["swap"]),
    }


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

    Every network runs on at most `BATCH` faces at a time (`FaceSwapGAN.transform`,
    `faceswap_gan.faces.identity.embed_crops`).

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
    from faceswap_gan.faces.identity import embed_crops

    real = {
        "A": np.asarray(held_out_a, np.float32),
        "B": np.asarray(held_out_b, np.float32),
    }
    embedded_real = {
        k: embed_crops(embedder, from_model_range(v), BATCH, normalise=False)
        for k, v in real.items()
    }
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
            embedded = embed_crops(
                embedder, from_model_range(images), BATCH, normalise=False
            )
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
