"""The whole pipeline on the bundled sample clips: extract -> train -> convert.

faceswap-GAN v2.2 shipped a Colab demo notebook
(colab_demo/faceswap-GAN_colab_demo.ipynb) that ran every step on two short clips;
`run_demo` is that notebook as one call (and `python -m faceswap_gan demo`). It uses
the two clips in `faceswap_gan/data/samples/` (`person_a.mp4`, `person_b.mp4`: 6 s,
30 fps, two women; LivePortrait's example driving videos, see the README's credits),
trains the "lite" model for a few minutes and converts `person_a.mp4` A->B as a
side-by-side comparison with the visible "SYNTHETIC" label. The default 60
iterations only show that every step works (the swap has barely started); a real run
needs tens of thousands of iterations on a GPU (see `train`).

Layout of `output_dir` (run again, the faces are reused, the training resumes and
the video is converted again):

    faces_a/faces/...     extract_faces of person_a.mp4 (aligned crops, eye masks)
    faces_b/faces/...     the same for person_b.mp4
    run-{preset}/         the training run folder (previews/, loss.png, ...)
    person_a_to_b.mp4     the converted video (H.264, audio kept, tagged synthetic)
    demo.json             what was done, to decide what can be reused
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from faceswap_gan.config import PRESETS, TrainConfig

SAMPLES_DIR = Path(__file__).resolve().parent / "data" / "samples"
SAMPLE_A = SAMPLES_DIR / "person_a.mp4"
SAMPLE_B = SAMPLES_DIR / "person_b.mp4"
DEFAULT_ITERATIONS = 60  # The whole demo: about 5 to 9 minutes on 2 shared CPU cores.
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
            ("extract", "train", "convert"); a reused step takes about 0 s.
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

    def summary(self) -> str:
        """Human-readable lines: where the results are and what was done."""
        took = ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items())
        return "\n".join(
            [
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
    path.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")


def _frames_folder(video: Path, folder: Path, max_frames: int) -> Path:
    """Decodes the first `max_frames` frames of `video` to PNGs in `folder`."""
    from faceswap_gan.faces.extract import iter_video_frames
    from faceswap_gan.images import write_image

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
    shutil.rmtree(output_dir / "faces", ignore_errors=True)
    report = extract_faces(source, output_dir, every=every, progress=progress)
    if max_frames is not None:
        shutil.rmtree(source)  # The decoded frames; the faces keep their numbers.
    if report.faces == 0:
        raise RuntimeError(f"No face found in {video}; the demo cannot train.")
    state.update(settings=wanted, faces=report.faces)
    return report.faces


def demo_train_config(
    output_dir: str | Path, iterations: int = DEFAULT_ITERATIONS, preset: str = "lite"
) -> TrainConfig:
    """The demo's TrainConfig: `preset` on the extracted faces and eye masks.

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
        raise ValueError(f"preset must be one of {tuple(PRESETS)}; got {preset!r}.")
    if int(iterations) < 1:
        raise ValueError(f"iterations must be >= 1; got {iterations!r}.")
    root = Path(output_dir)
    faces = {side: root / f"faces_{side}" / "faces" for side in "ab"}
    return TrainConfig.from_preset(
        preset,
        faces_a=str(faces["a"] / "aligned_faces"),
        faces_b=str(faces["b"] / "aligned_faces"),
        masks_a=str(faces["a"] / "binary_masks_eyes"),
        masks_b=str(faces["b"] / "binary_masks_eyes"),
        run_dir=str(root / f"run-{preset}"),
        iterations=int(iterations),
        display_iters=max(1, int(iterations) // 10),
        backup_iters=0,
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
        ValueError: a bad argument (the message says what is allowed).
        RuntimeError: no face found in a clip.
    """
    from converter.config import ConverterConfig
    from converter.pipeline import VideoConverter
    from faceswap_gan.checkpoints import load_model
    from faceswap_gan.training import train

    if int(every) < 1:
        raise ValueError(f"every must be >= 1; got {every!r}.")
    if max_frames is not None and int(max_frames) < 1:
        raise ValueError(f"max_frames must be >= 1 or None; got {max_frames!r}.")
    if output_type not in OUTPUT_TYPES:
        raise ValueError(
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
    model = load_model(run_dir)
    converter_config = ConverterConfig(
        image_shape=model.image_size,
        output_type=output_type,
        direction="AtoB",
        watermark=True,
    )
    video = root / "person_a_to_b.mp4"
    report = VideoConverter(model, converter_config).convert(
        SAMPLE_A, video, max_frames=max_frames, progress=progress
    )
    seconds["convert"] = time.perf_counter() - tic
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
    )
    print(result.summary())
    return result
