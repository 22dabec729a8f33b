"""The whole pipeline on the bundled sample clips: extract -> train -> convert.

faceswap-GAN v2.2 shipped a Colab demo notebook
(colab_demo/faceswap-GAN_colab_demo.ipynb) that ran every step on two short clips;
`run_demo` is that notebook as one call (and `python -m faceswap_gan demo`). It uses
the two clips in `faceswap_gan/data/samples/` (`person_a.mp4`, `person_b.mp4`: 6 s,
30 fps, two women; LivePortrait's example driving videos, see the README's credits),
trains the "lite" model for a few minutes and converts `person_a.mp4` A->B as a
side-by-side comparison with the visible "SYNTHETIC" label. Then it measures the
result with the independent identity scorer (MobileFaceNet, which no loss trained
against): on each frame, is the swapped face closer to person B than the source face
is? The summary prints that share of frames.

What the demo changes from v2.2's Colab recipe so that a CPU run of about ten minutes
shows a swap, each a documented choice (`demo_train_config`; the figures come from
`benchmarks/learning.py` runs on the bundled clips, see benchmarks/README.md):
- no self-attention: at 64x64 positions SAGAN is about half of lite's FLOPs;
- `instancenorm_v22` instead of lite's "hybrid": hybrid leaves half of the channels
  un-normalised, and in a short run its raw output carries a grid pattern;
- learning rates `DEMO_LR_FACTOR` (5) times v2.2's. v2.2's rates are tuned for 40k
  iterations; at 1x the raw A->B swap is still a blur that the identity scorer does
  not tell from anyone after 800 iterations, at 5x the composited swaps of the
  training faces score closer to B than the source faces after 600;
- the run's LossConfig is v2.2's hinge alpha loss at margin `DEMO_M_MASK` (0.5) from
  the start, with no perceptual loss, and the schedule is "constant". v2.2 spends the
  first fifth of its schedule with the L1 alpha loss, which drives alpha towards 0
  long before the faces are learnt (a short run would paste back the source face
  unchanged); its schedule reaches hinge 0.5 at 3/10.
The output never saturates (the periodic evaluation's saturated share stays 0) and the
result is a soft, blurry first swap, not a finished one: a real run uses `train` with
the v2.2 schedule, tens of thousands of iterations on a GPU.

Layout of `output_dir` (run again, the faces are reused, the training resumes and
the video is converted again):

    faces_a/faces/...     extract_faces of person_a.mp4 (aligned crops, eye masks)
    faces_b/faces/...     the same for person_b.mp4
    run-{preset}/         the training run folder (previews/, loss.png, ...)
    person_a_to_b.mp4     the converted video (H.264, audio kept, tagged synthetic)
    demo.json             what was done, to decide what can be reused
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faceswap_gan import files
from faceswap_gan.config import PRESETS, LossConfig, TrainConfig
from faceswap_gan.errors import FaceswapError

SAMPLES_DIR = Path(__file__).resolve().parent / "data" / "samples"
SAMPLE_A = SAMPLES_DIR / "person_a.mp4"
SAMPLE_B = SAMPLES_DIR / "person_b.mp4"
DEFAULT_ITERATIONS = 800  # The whole demo: under 15 minutes on 2 CPU cores (README).
DEMO_M_MASK = 0.5  # Hinge margin of the alpha loss in the demo (v2.2's 3/10 stage).
DEMO_LR_FACTOR = 5.0  # Learning rates 5x v2.2's (module doc: why).
DEMO_NORM = "instancenorm_v22"  # v2.2's instancenorm instead of lite's hybrid.
DEMO_BATCH_SIZE = 4  # The Colab demo's batchSize.
OUTPUT_TYPES = ("single", "combined", "triple")


@dataclass
class DemoResult:
    """Where `run_demo` put its results, and what it counted.

    Attributes:
        output_dir: Path. The demo folder (see the module doc for its layout).
        video: Path. The converted video of person A with B's face (H.264 MP4).
        previews_dir: Path. Training preview grids (`step_XXXXXXX.png`, `latest.png`).
        loss_plot: Path. `loss.png` of the run.
        run_dir: Path. The training run folder (a `load_model` path).
        faces_a: int. Aligned faces extracted from person_a.mp4.
        faces_b: int. Aligned faces extracted from person_b.mp4.
        iterations: int. Training iterations of the run.
        frames: int. Frames converted.
        faces_swapped: int. Faces swapped over all converted frames.
        seconds: dict[str, float]. Wall time of each step in this call
            ("extract", "train", "convert", "score"); a reused step takes about 0 s.
        identity: SwapIdentity | None. Per-frame identity of the converted faces
            against person B (`evaluation.identity_video`), by MobileFaceNet.
    """

    output_dir: Path
    video: Path
    previews_dir: Path
    loss_plot: Path
    run_dir: Path
    faces_a: int = 0
    faces_b: int = 0
    iterations: int = 0
    frames: int = 0
    faces_swapped: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    identity: object | None = None

    def summary(self) -> str:
        """Human-readable lines: where the results are and what was done."""
        took = ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items())
        lines = []
        if self.identity is not None:
            ident = self.identity
            lines.append(
                f"Identity (MobileFaceNet, cosine to person B): the swapped face is "
                f"closer to B than the source face on {100 * ident.closer_fraction:.0f}"
                f"% of {len(ident.indices)} frames with a face (mean cosine source "
                f"{ident.source.mean():.3f} -> swapped {ident.swapped.mean():.3f})"
            )
        return "\n".join(
            lines
            + [
                f"Faces extracted: {self.faces_a} of person A, "
                f"{self.faces_b} of person B",
                f"Trained {self.iterations} iterations; converted {self.frames} frames "
                f"({self.faces_swapped} faces swapped); {took}",
                f"Converted video: {self.video}",
                f"Previews:        {self.previews_dir}",
                f"Loss plot:       {self.loss_plot}",
                f"Run folder:      {self.run_dir} (a --model for `convert`)",
            ]
        )


def _read_state(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_state(path: Path, state: dict) -> None:
    files.write_text(path, json.dumps(state, indent=2, sort_keys=True) + "\n")


def _frames_folder(video: Path, folder: Path, max_frames: int) -> Path:
    """Decodes the first `max_frames` frames of `video` to PNGs in `folder`."""
    from faceswap_gan.images import write_image
    from faceswap_gan.video import iter_video_frames

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for index, frame in iter_video_frames(video, 1, max_frames):
        write_image(folder / f"frame{index:05d}.png", frame)
    return folder


def extract_sample(
    video: Path,
    output_dir: Path,
    every: int,
    max_frames: int | None,
    state: dict,
    progress: bool = True,
) -> int:
    """Runs `extract_faces` on one clip unless `state` shows the same run finished.

    Args:
        video: Path. The clip.
        output_dir: Path. Faces go to `output_dir/faces/` (the extract layout).
        every: int >= 1. Use every Nth frame.
        max_frames: int | None. Only the first N frames of the clip; None = all.
        state: dict. Per-clip record of a finished extraction; updated in place.
        progress: bool. Show progress bars.

    Returns:
        int. Aligned faces available in `output_dir/faces/aligned_faces`.

    Raises:
        RuntimeError: no face was found in the clip.
    """
    from faceswap_gan.faces.extract import extract_faces

    wanted = {"every": every, "max_frames": max_frames}
    if state.get("settings") == wanted and state.get("faces", 0) > 0:
        return state["faces"]
    source = video
    if max_frames is not None:
        source = _frames_folder(video, output_dir / "frames", max_frames)
    # Settings changed or an earlier run stopped: replace its faces, never mix them.
    report = extract_faces(
        source, output_dir, every=every, progress=progress, overwrite=True
    )
    if max_frames is not None:
        shutil.rmtree(source)  # The decoded frames; the faces keep their numbers.
    if report.faces == 0:
        raise FaceswapError(f"No face found in {video}; the demo cannot train.")
    state.update(settings=wanted, faces=report.faces)
    return report.faces


def demo_train_config(
    output_dir: str | Path, iterations: int = DEFAULT_ITERATIONS, preset: str = "lite"
) -> TrainConfig:
    """The demo's TrainConfig: `preset` on the extracted faces and eye masks, without
    self-attention, with the hinge alpha loss at `DEMO_M_MASK` from the start, no
    perceptual loss, the "constant" schedule and batch size 4 (module doc: why).

    Previews, the loss plot and a checkpoint are written about 10 times during the
    run (`display_iters = iterations // 10`, at least 1), and no backups are kept.

    Args:
        output_dir: str | Path. The demo folder (faces_a/, faces_b/ inside).
        iterations: int >= 1. Training iterations.
        preset: str. A name in `config.PRESETS` ("lite" for the demo, "tiny" in tests).

    Raises:
        ValueError: unknown preset or iterations < 1.
    """
    if preset not in PRESETS:
        raise FaceswapError(f"preset must be one of {tuple(PRESETS)}; got {preset!r}.")
    if int(iterations) < 1:
        raise FaceswapError(f"iterations must be >= 1; got {iterations!r}.")
    root = Path(output_dir)
    faces = {side: root / f"faces_{side}" / "faces" for side in "ab"}
    return TrainConfig.from_preset(
        preset,
        arch=dataclasses.replace(PRESETS[preset], use_self_attn=False, norm=DEMO_NORM),
        loss=LossConfig(
            use_mask_hinge_loss=True, m_mask=DEMO_M_MASK, lr_factor=DEMO_LR_FACTOR
        ),
        schedule="constant",
        batch_size=DEMO_BATCH_SIZE,
        faces_a=str(faces["a"] / "aligned_faces"),
        faces_b=str(faces["b"] / "aligned_faces"),
        masks_a=str(faces["a"] / "binary_masks_eyes"),
        masks_b=str(faces["b"] / "binary_masks_eyes"),
        run_dir=str(root / f"run-{preset}"),
        iterations=int(iterations),
        display_iters=max(1, int(iterations) // 10),
        backup_iters=0,
    )


def score_identity(root: Path, video: Path, output_type: str, max_frames=None):
    """Per-frame identity of the converted video against person B's extracted faces,
    by the independent scorer (MobileFaceNet) -> `SwapIdentity`."""
    from faceswap_gan.evaluation.identity_video import swap_identity_per_frame
    from faceswap_gan.faces.identity import build_identity_embedder
    from faceswap_gan.images import list_images, read_image

    faces_b = list_images(root / "faces_b" / "faces" / "aligned_faces")
    return swap_identity_per_frame(
        SAMPLE_A,
        video,
        np.stack([read_image(path) for path in faces_b]),
        build_identity_embedder("mobilefacenet"),
        panel=0 if output_type == "single" else 1,
        max_frames=max_frames,
    )


def convert_sample(run_dir: Path, video: Path, output_type, max_frames, progress):
    """Converts the sample clip of A to B with the run's model (labelled as
    synthetic, audio kept) into `video`, replacing an earlier demo video.

    Returns:
        converter.pipeline.ConversionReport.
    """
    from converter.config import ConverterConfig
    from converter.pipeline import VideoConverter
    from faceswap_gan.checkpoints import load_model

    model = load_model(run_dir)
    config = ConverterConfig(output_type=output_type, direction="AtoB", watermark=True)
    return VideoConverter(model, config).convert(
        SAMPLE_A, video, max_frames=max_frames, progress=progress, overwrite=True
    )


def run_demo(
    output_dir: str | Path = "demo_output",
    iterations: int = DEFAULT_ITERATIONS,
    every: int = 2,
    preset: str = "lite",
    max_frames: int | None = None,
    progress: bool = True,
    output_type: str = "combined",
) -> DemoResult:
    """Extracts faces from the two sample clips, trains briefly and converts A->B.

    Re-running with the same `output_dir` reuses finished extractions, resumes
    training from its checkpoint (more `iterations` train further) and converts again.

    Args:
        output_dir: str | Path. Demo folder, created if needed (module doc: layout).
        iterations: int >= 1. Training iterations (60: about 5 to 9 min in all on
            2 CPU cores, where the swap has barely started; 20000+ for a convincing
            swap, on a GPU).
        every: int >= 1. Extract faces from every Nth frame of each clip.
        preset: str. Model preset, `config.PRESETS` ("tiny" for smoke tests).
        max_frames: int | None. Use only the first N frames of each clip (extraction
            and conversion); None = the whole clips (180 frames).
        progress: bool. Show progress bars.
        output_type: str. Layout of the video: "single" (result), "combined"
            (source | result) or "triple" (source | result | mask).

    Returns:
        DemoResult (its `summary()` is also printed).

    Raises:
        FaceswapError: a bad argument (the message says what is allowed), or no
            face found in a clip.
    """
    from faceswap_gan.training import train

    if int(every) < 1:
        raise FaceswapError(f"every must be >= 1; got {every!r}.")
    if max_frames is not None and int(max_frames) < 1:
        raise FaceswapError(f"max_frames must be >= 1 or None; got {max_frames!r}.")
    if output_type not in OUTPUT_TYPES:
        raise FaceswapError(
            f"output_type must be one of {OUTPUT_TYPES}; got {output_type!r}."
        )
    config = demo_train_config(output_dir, iterations, preset)
    root = Path(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    state_path = root / "demo.json"
    state = _read_state(state_path)
    seconds = {}

    tic = time.perf_counter()
    counts = {}
    for side, video in (("a", SAMPLE_A), ("b", SAMPLE_B)):
        side_state = state.setdefault(f"extract_{side}", {})
        counts[side] = extract_sample(
            video, root / f"faces_{side}", int(every), max_frames, side_state, progress
        )
        _write_state(state_path, state)
    seconds["extract"] = time.perf_counter() - tic

    tic = time.perf_counter()
    run_dir = train(config, resume=True, progress=progress)
    seconds["train"] = time.perf_counter() - tic

    tic = time.perf_counter()
    video = root / "person_a_to_b.mp4"
    report = convert_sample(run_dir, video, output_type, max_frames, progress)
    seconds["convert"] = time.perf_counter() - tic

    tic = time.perf_counter()
    identity = score_identity(root, video, output_type, max_frames)
    seconds["score"] = time.perf_counter() - tic
    state["convert"] = {
        "frames": report.frames,
        "faces": report.faces,
        "iterations": config.iterations,
    }
    _write_state(state_path, state)
    result = DemoResult(
        root,
        video,
        run_dir / "previews",
        run_dir / "loss.png",
        run_dir,
        counts["a"],
        counts["b"],
        config.iterations,
        report.frames,
        report.faces,
        seconds,
        identity,
    )
    print(result.summary())
    return result
