"""Face extraction from a video or an image folder: raw crops, aligned crops, eye masks.

The MTCNN notebook / `preprocess.py` of faceswap-GAN v2.2 as one function, writing the
original's layout under `output_dir/faces/`:

    raw_faces/frame{N}face{i}.jpg          the square detection box, unaligned
    aligned_faces/frame{N}face{i}.jpg      aligned on the five landmarks (alignment.py;
                                           `alignment` names the template)
    binary_masks_eyes/frame{N}face{i}.jpg  eye mask of the aligned face
    faces.csv                              one row per face: box, score, 5 landmarks

Fixes over the original: every face is aligned with its own landmarks (REFERENCE 1.10
item 5), eye masks come from 68-point landmarks by default (the crude MTCNN rectangles
remain an option), video is streamed (memory does not grow with its length), and an
optional reference photo keeps only faces of that person.

Safe outputs:
- An output that already holds faces (an image in one of the three folders, or a
  faces.csv) is refused: extracting again would mix two people's faces and list only
  the new ones in faces.csv. `append=True` keeps the old faces and adds the new ones
  (faces.csv lists old rows then new rows); `overwrite=True` first removes the old
  extract outputs, only the files this function writes (the three folders' images and
  faces.csv), never other files.
- Appended faces are named `{input stem}_frame{N}face{i}.jpg` (the video's file name
  without suffix, or the image folder's name), so a second clip does not reuse the
  first one's names; a name already taken (by stem, in any of the three folders or in
  faces.csv: the same input appended twice) gets `-2`, `-3`, ... before `.jpg`.
- Every image is written atomically (`images.write_image`) and faces.csv is written
  to a temporary file and renamed when the run ends, also when it ends with an error
  (then it lists the faces written so far). A kill leaves the previous faces.csv (or
  none), never half of one.
- Unreadable images of an input folder are skipped as `images.ImageReadPolicy` says
  (a warning names them; more than 10 % unreadable fails).
"""

from __future__ import annotations

import csv
import errno
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from tqdm.auto import tqdm

from faceswap_gan.errors import FaceswapError
from faceswap_gan.faces.alignment import (
    align,
    check_alignment,
    deepfacelive_matrix,
    transform_points,
    warp_to_crop,
)
from faceswap_gan.faces.detection import Face, FaceDetector
from faceswap_gan.faces.masks import crude_eye_mask, eye_mask
from faceswap_gan.files import atomic_output, remove_partials
from faceswap_gan.images import (
    IMAGE_EXTENSIONS,
    ImageReadPolicy,
    list_images,
    read_image,
    write_image,
)
from faceswap_gan.video import VideoReader, iter_video_frames

SUBFOLDERS = ("raw_faces", "aligned_faces", "binary_masks_eyes")
CSV_COLUMNS = (
    ["file", "frame", "face", "source", "x0", "y0", "x1", "y1", "score"]
    + [
        f"{p}_{c}"
        for p in ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
        for c in ("x", "y")
    ]
    + ["reference_distance"]
)


@dataclass
class ExtractReport:
    """What `extract_faces` did.

    Attributes:
        output_dir: Path. `output_dir/faces`, holding the three folders and faces.csv.
        frames_total: int | None. Frames in the video (container metadata; None if
            unknown) or images in the folder.
        frames_sampled: int. Frames searched for faces (every Nth).
        faces: int. Faces written.
        frames_without_faces: int. Sampled frames where no face was kept.
        rejected_by_reference: int. Faces dropped as not the reference person.
        csv_path: Path. The per-face table.
        names: list[str]. File names written (the same in all three folders).
        previous_faces: int. Rows of an earlier faces.csv kept (`append`).
        removed: int. Files of an earlier extract removed (`overwrite`).
        skipped: list[str]. Unreadable images of an input folder that were skipped.
    """

    output_dir: Path
    frames_total: int | None = None
    frames_sampled: int = 0
    faces: int = 0
    frames_without_faces: int = 0
    rejected_by_reference: int = 0
    csv_path: Path | None = None
    names: list[str] = field(default_factory=list)
    previous_faces: int = 0
    removed: int = 0
    skipped: list[str] = field(default_factory=list)


def _iter_inputs(
    source: Path, every: int
) -> tuple[Iterator, int | None, ImageReadPolicy | None]:
    """(iterator of (index, frame, source name), total frame count or None, the
    unreadable-image policy of a folder input or None for a video)."""
    if source.is_dir():
        images = list_images(source)
        if not images:
            raise FaceswapError(
                f"No images in folder {source}; expected files ending in "
                f"{', '.join(IMAGE_EXTENSIONS)}."
            )
        picked = [(i, p) for i, p in enumerate(images) if i % every == 0]
        policy = ImageReadPolicy(len(picked), f"images in {source}")
        frames = (
            (i, image, p.name)
            for i, p in picked
            if (image := policy.read(p)) is not None
        )
        return frames, len(images), policy
    reader = VideoReader(source)  # Validates the file before anything is written.
    total = reader.frame_count if reader.frame_count_exact else None
    frames = ((i, f, source.name) for i, f in iter_video_frames(source, every))
    return frames, total, None


def _not_a_folder(path: Path) -> NotADirectoryError:
    return NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))


def _earlier_outputs(root: Path) -> list[Path]:
    """The files an earlier extract wrote under `root` (`OUTPUT/faces`): images in the
    three folders and faces.csv.

    Raises:
        NotADirectoryError: a file stands where one of the folders belongs.
        IsADirectoryError: faces.csv is a folder.
    """
    for folder in (root.parent, root, *(root / sub for sub in SUBFOLDERS)):
        if folder.exists() and not folder.is_dir():
            raise _not_a_folder(folder)
    found = [
        p
        for sub in SUBFOLDERS
        if (root / sub).is_dir()
        for p in list_images(root / sub)
    ]
    csv_path = root / "faces.csv"
    if csv_path.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(csv_path))
    if csv_path.exists():
        found.append(csv_path)
    return found


def _check_output_state(
    root: Path, earlier: list[Path], append: bool, overwrite: bool
) -> None:
    """Refuses to mix new faces into an earlier extract without append/overwrite."""
    if append and overwrite:
        raise FaceswapError(
            "--append and --overwrite exclude each other: --append keeps the faces "
            "already extracted, --overwrite removes them. Give one of them."
        )
    if earlier and not (append or overwrite):
        faces = len({p.stem for p in earlier if p.name != "faces.csv"})
        has_csv = any(p.name == "faces.csv" for p in earlier)
        held = " and ".join([f"{faces} faces"] * (faces > 0) + ["faces.csv"] * has_csv)
        raise FaceswapError(
            f"The output {root} already holds an earlier extract ({held}); "
            "extracting into it would mix the faces of two runs. Give --append to "
            "add the new faces, --overwrite to replace the old ones, or choose "
            "another --output."
        )


def _read_rows(csv_path: Path) -> list[list[str]]:
    """The rows of an earlier faces.csv in `CSV_COLUMNS` order ([] if none)."""
    if not csv_path.is_file():
        return []
    try:
        with open(csv_path, newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None:  # An empty file.
                return []
            if "file" not in reader.fieldnames:
                raise FaceswapError(
                    f"{csv_path} is not a faces.csv of extract (no 'file' column); "
                    "move it away or give --overwrite to replace it."
                )
            return [[row.get(c) or "" for c in CSV_COLUMNS] for row in reader]
    except (csv.Error, UnicodeDecodeError) as error:
        raise FaceswapError(
            f"Cannot read the earlier {csv_path} ({error}); move it away or give "
            "--overwrite to replace it."
        ) from error


def _taken_stems(root: Path, rows: list[list[str]]) -> set[str]:
    """Name stems in use: files in the three folders and faces.csv's file column."""
    stems = {Path(row[0]).stem for row in rows}
    for sub in SUBFOLDERS:
        if (root / sub).is_dir():
            stems.update(p.stem for p in (root / sub).iterdir())
    return stems


def _reference_embedding(photo: str | Path, detector: FaceDetector, size: int):
    """(embedder, (128,) embedding of the best face in `photo`)."""
    from faceswap_gan.faces.identity import FaceEmbedder

    image = read_image(photo)
    faces = detector.detect(image)
    if not faces:
        raise FaceswapError(f"No face found in the reference photo {photo}.")
    embedder = FaceEmbedder()
    crop, _ = align(image, faces[0].landmarks5, size)
    return embedder, embedder.embed(crop[None])[0]


def _eye_masks(frame, faces, matrices, size, landmark_detector) -> list[np.ndarray]:
    """One `(size, size)` float32 eye mask per face, in aligned-crop pixels."""
    if landmark_detector is None:  # Crude rectangles, warped like the face.
        return [
            warp_to_crop(
                crude_eye_mask(f.landmarks5, f.box, frame.shape),
                m,
                size,
                border=cv2.BORDER_CONSTANT,
            )
            for f, m in zip(faces, matrices)
        ]
    boxes = np.stack([f.box for f in faces])
    points = landmark_detector.detect(frame, boxes)  # (N, 68, 2) frame pixels
    return [
        eye_mask(transform_points(p, m), (size, size)) for p, m in zip(points, matrices)
    ]


def _csv_row(name: str, index: int, i: int, source: str, face: Face, dist) -> list:
    return (
        [name, index, i, source]
        + [f"{v:.2f}" for v in face.box]
        + [f"{face.score:.5f}"]
        + [f"{v:.2f}" for v in face.landmarks5.ravel()]
        + ["" if dist is None else f"{dist:.4f}"]
    )


def extract_faces(
    input: str | Path,
    output_dir: str | Path,
    every: int = 1,
    detector: FaceDetector | None = None,
    reference: str | Path | None = None,
    size: int = 256,
    crude_masks: bool = False,
    landmark_backend: str = "face_api",
    threshold: float = 0.6,
    progress: bool = True,
    alignment: str = "default",
    append: bool = False,
    overwrite: bool = False,
) -> ExtractReport:
    """Detects, aligns and saves every face of a video or an image folder.

    An output that already holds an extract is refused unless `append` or
    `overwrite` is given (module doc: naming of appended faces, what is removed).

    Args:
        input: str | Path. A video file (anything FFmpeg reads) or a folder of images.
        output_dir: str | Path. Results go to `output_dir/faces/` (see module doc).
        every: int >= 1. Use every Nth frame (the original notebook used 6).
        detector: FaceDetector | None. Defaults to `FaceDetector()` (threshold 0.8).
        reference: str | Path | None. A photo of the wanted person; faces whose face
            embedding is farther than `threshold` (L2) are skipped.
        size: int. Side of the aligned crops and masks in pixels.
        crude_masks: bool. Use the original's rectangular MTCNN eye masks instead of
            68-point eye masks.
        landmark_backend: str. `LandmarkDetector` backend for the 68-point masks.
        threshold: float. Same-person L2 embedding distance for `reference` (0.6).
        progress: bool. Show a tqdm bar.
        alignment: str. Crop framing (`faceswap_gan.faces.alignment.ALIGNMENTS`):
            "default" (this project's; the converter aligns this way),
            "dfl_whole_face" (FaceFusion's crop for .dfm models, five points) or
            "deepfacelive" (DeepFaceLive's 68-point aligner at its default settings,
            `alignment.deepfacelive_matrix`, on `landmark_backend` landmarks; black
            outside the frame as there). The reference filter always compares
            default-aligned crops (what the embedder expects).
        append: bool. Keep the faces of an earlier extract in `output_dir` and add the
            new ones (named `{input stem}_frame{N}face{i}.jpg`); faces.csv keeps the
            old rows and adds the new ones.
        overwrite: bool. Remove an earlier extract's images (in the three folders) and
            faces.csv before extracting; other files stay.

    Returns:
        ExtractReport. A video without faces gives empty folders and `faces == 0`.

    Raises:
        FileNotFoundError: `input` or `reference` does not exist.
        NotADirectoryError: a file stands where an output folder belongs.
        FaceswapError: unreadable video, empty image folder, more than 10 % of an
            image folder unreadable, `every < 1`, `size < 8`, no face in the reference
            photo, an earlier extract in `output_dir` without `append` or `overwrite`,
            or both of them, an unknown `alignment`.
        OSError: the output cannot be written (read-only, full disk).
    """
    source = Path(input)
    if not source.exists():
        raise FileNotFoundError(
            f"Input not found: {source} (give a video or a folder)."
        )
    if int(every) < 1 or int(size) < 8:
        raise FaceswapError(f"every must be >= 1 and size >= 8; got {every}, {size}.")
    check_alignment(alignment)
    root = Path(output_dir) / "faces"
    earlier = _earlier_outputs(root)
    _check_output_state(root, earlier, append, overwrite)
    frames, total, policy = _iter_inputs(source, int(every))
    detector = detector or FaceDetector()
    embedder, ref = (None, None)
    if reference is not None:
        embedder, ref = _reference_embedding(reference, detector, size)
    landmark_detector = points_detector = None
    if not crude_masks or alignment == "deepfacelive":
        from faceswap_gan.faces.landmarks import LandmarkDetector

        points_detector = LandmarkDetector(backend=landmark_backend)
        landmark_detector = None if crude_masks else points_detector
    report = ExtractReport(
        output_dir=root, frames_total=total, csv_path=root / "faces.csv"
    )
    old_rows = _read_rows(report.csv_path) if append else []
    if overwrite:  # Only now: a bad input or option above leaves the old faces.
        for path in earlier:
            path.unlink()
        report.removed = len(earlier)
    for sub in SUBFOLDERS:
        (root / sub).mkdir(parents=True, exist_ok=True)
        remove_partials(root / sub)  # Temporary files of a killed earlier run.
    remove_partials(root)
    step = _FrameStep(detector, landmark_detector, size, root, alignment=alignment)
    step.points_detector = points_detector
    if append:
        step.prefix = f"{source.stem}_"
        step.taken = _taken_stems(root, old_rows)
    if embedder is not None:
        step.embedder, step.reference, step.threshold = embedder, ref, threshold
    report.previous_faces = len(old_rows)
    bar_total = None if total is None else -(-total // int(every))
    _write_faces(step, frames, report, old_rows, bar_total, progress)
    if policy is not None:
        report.skipped = [p.name for p in policy.skipped]
        policy.finish(stacklevel=2)
    if report.faces == 0:
        print(
            f"No faces found in {source} ({report.frames_sampled} frames searched); "
            f"the output folders under {root} are empty."
        )
    return report


def _write_faces(step, frames, report: ExtractReport, old_rows, total, progress):
    """Runs `step` on every frame, counting into `report`, with faces.csv (the old
    rows, then a row per face written) going to a temporary file renamed at the end:
    a kill leaves the old faces.csv; an error still publishes it, listing the faces
    written until then, and is re-raised."""
    failure = None
    with atomic_output(report.csv_path) as tmp, open(tmp, "w", newline="") as handle:
        step.writer = csv.writer(handle)
        step.writer.writerow(CSV_COLUMNS)
        step.writer.writerows(old_rows)
        try:
            for index, frame, name in tqdm(
                frames,
                total=total,
                disable=not progress,
                desc="extract",
                unit="frame",
            ):
                kept, rejected, names = step(frame, index, name)
                report.frames_sampled += 1
                report.faces += kept
                report.rejected_by_reference += rejected
                report.frames_without_faces += kept == 0
                report.names.extend(names)
        except BaseException as error:  # Re-raised below, once faces.csv is written.
            failure = error
        try:
            handle.flush()
            os.fsync(handle.fileno())
        except OSError:
            if failure is None:
                raise
            raise failure from None  # faces.csv cannot be written either: keep the old.
    if failure is not None:
        raise failure


@dataclass
class _FrameStep:
    """Detect -> (identity filter) -> align -> eye masks -> write, for one frame."""

    detector: FaceDetector
    landmark_detector: object | None  # None: crude MTCNN eye masks
    size: int
    root: Path
    writer: object = None  # csv.writer
    prefix: str = ""  # Of the file names ("{input stem}_" when appending).
    taken: set[str] | None = None  # Name stems in use (appending), else None.
    embedder: object | None = None  # FaceEmbedder when a reference photo is given
    reference: np.ndarray | None = None  # (128,) embedding of the reference face
    threshold: float = 0.6
    alignment: str = "default"  # alignment.ALIGNMENTS name of the written crops
    points_detector: object | None = None  # 68-point landmarks for "deepfacelive"

    def __call__(self, frame, index, source) -> tuple[int, int, list[str]]:
        """Returns (faces kept, faces rejected as another person, names written)."""
        faces = self.detector.detect(frame)
        aligned = self._align(frame, faces)
        distances = [None] * len(faces)
        if self.embedder is not None and faces:
            crops = [crop for crop, _ in aligned]
            if self.alignment != "default":  # the embedder's crops
                crops = [align(frame, f.landmarks5, self.size)[0] for f in faces]
            embeddings = self.embedder.embed(np.stack(crops))
            distances = list(np.linalg.norm(embeddings - self.reference, axis=1))
        keep = [i for i, d in enumerate(distances) if d is None or d < self.threshold]
        if not keep:
            return 0, len(faces), []
        faces, aligned = [faces[i] for i in keep], [aligned[i] for i in keep]
        matrices = [matrix for _, matrix in aligned]
        masks = _eye_masks(frame, faces, matrices, self.size, self.landmark_detector)
        names = []
        for i, (face, (crop, _), mask, k) in enumerate(
            zip(faces, aligned, masks, keep)
        ):
            name = self._name(f"{self.prefix}frame{index}face{i}")
            x0, y0, x1, y1 = np.round(face.box).astype(int)
            write_image(self.root / "raw_faces" / name, frame[y0:y1, x0:x1])
            write_image(self.root / "aligned_faces" / name, crop)
            mask = np.clip(mask * 255 + 0.5, 0, 255).astype(np.uint8)
            write_image(self.root / "binary_masks_eyes" / name, mask)
            self.writer.writerow(_csv_row(name, index, i, source, face, distances[k]))
            names.append(name)
        return len(faces), len(distances) - len(faces), names

    def _align(self, frame, faces) -> list[tuple[np.ndarray, np.ndarray]]:
        """(crop, frame -> crop matrix) per face, framed as `self.alignment` says."""
        if self.alignment != "deepfacelive":
            return [
                align(frame, f.landmarks5, self.size, self.alignment) for f in faces
            ]
        if not faces:
            return []
        points = self.points_detector.detect(frame, np.stack([f.box for f in faces]))
        matrices = [deepfacelive_matrix(p, self.size) for p in points]
        # DeepFaceLive's cut: cv2.warpAffine with the default (linear, black) border.
        return [
            (warp_to_crop(frame, m, self.size, border=cv2.BORDER_CONSTANT), m)
            for m in matrices
        ]

    def _name(self, stem: str) -> str:
        """`stem.jpg`, or `stem-2.jpg`, `stem-3.jpg`, ... when `stem` is taken."""
        if self.taken is not None:
            candidate, k = stem, 1
            while candidate in self.taken:
                k += 1
                candidate = f"{stem}-{k}"
            self.taken.add(candidate)
            stem = candidate
        return f"{stem}.jpg"
