"""Peak memory and time of `python -m faceswap_gan evaluate` against the face count.

Builds a run folder holding a freshly initialised 64 px model with self-attention
(`--preset`, default "standard"; no training: memory and time do not depend on the
weights) saved with `faceswap_gan.checkpoints.save_checkpoint`, and two folders of N
real 256 px face crops each (person A: `shared/data/faces/lp_d6`, person B:
`shared/data/faces/lp_d10`, else the 16 crops of `tests/data/faces/{a,b}`). Beyond
the real crops, folders are filled with augmented copies: a horizontal flip and
small shifts (up to 6 px, border replicated) of the real crops, written as JPEG
quality 90 like the originals.

For each N in `--sizes`, `evaluate` runs in its own subprocess (no `--video`: faces
only) and the table shows its peak resident memory (`ru_maxrss` of that child, from
`os.wait4`, in GB = 1e9 bytes), its wall time and the time per face (both people's
faces counted), then the ratio of the peak at the largest N to the peak at 355 (or
the smallest N).

`--source DIR` runs the `faceswap_gan` package of another checkout (for instance
the code before a change) on the same model and faces.

On the project's 2-core CPU machine `evaluate` takes about 0.2 s per face (standard
preset; both people's faces counted), so the default sizes (90, 355, 2000 faces per
person) run in about 17 minutes; 10000 faces per person would take over an hour.

Usage:
    python benchmarks/eval_memory.py
    python benchmarks/eval_memory.py --sizes 5000 --preset lite --work /tmp/eval-mem
    python benchmarks/eval_memory.py --sizes 90 --source /tmp/old-checkout
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_FACES = REPO.parent / "shared" / "data" / "faces"
PEOPLE = {"a": ("lp_d6", "a"), "b": ("lp_d10", "b")}  # shared folder, tests folder
SHIFTS = ((0, 0), (4, 0), (0, 4), (-4, 0), (0, -4), (6, 6), (-6, 6), (6, -6))


def real_crops(person: str) -> list[Path]:
    """The real crops of `person` ("a"/"b"): shared/data when present, else tests."""
    shared, tests = PEOPLE[person]
    folder = SHARED_FACES / shared
    if not folder.is_dir():
        folder = REPO / "tests" / "data" / "faces" / tests
    return sorted(folder.glob("*.jpg"))


def make_faces(folder: Path, sources: list[Path], count: int) -> None:
    """Fills `folder` with `count` crops: the real ones, then flipped and shifted."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        source = sources[i % len(sources)]
        variant = i // len(sources)
        if variant == 0:
            shutil.copyfile(source, folder / f"{i:06d}.jpg")
            continue
        image = cv2.imread(str(source))
        if variant % 2:
            image = image[:, ::-1]
        dx, dy = SHIFTS[(variant // 2) % len(SHIFTS)]
        matrix = np.float32([[1, 0, dx], [0, 1, dy]])
        size = image.shape[1], image.shape[0]
        image = cv2.warpAffine(image, matrix, size, borderMode=cv2.BORDER_REPLICATE)
        cv2.imwrite(str(folder / f"{i:06d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 90])


MAKE_RUN = """
import sys
from pathlib import Path
from faceswap_gan.checkpoints import save_checkpoint
from faceswap_gan.config import PRESETS
from faceswap_gan.models.gan import FaceSwapGAN
model = FaceSwapGAN(PRESETS[sys.argv[2]])
model.compile()
save_checkpoint(model, Path(sys.argv[1]) / "checkpoints", {"step": 0})
"""


def make_run(run_dir: Path, preset: str) -> None:
    """A run folder with a freshly initialised model of `preset` at step 0.

    Built in a subprocess: this process stays small, because Linux counts the
    parent's peak RSS in a child's `ru_maxrss` when the child is started (fork and
    exec share the parent's memory until the exec)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run(
        [sys.executable, "-c", MAKE_RUN, str(run_dir), preset], env=env, check=True
    )


def run_evaluate(run_dir, faces: dict, output: Path, source: Path) -> tuple:
    """(peak RSS in GB, seconds) of one `evaluate` subprocess."""
    command = [sys.executable, "-m", "faceswap_gan", "evaluate", "--model",
               str(run_dir), "--faces-a", str(faces["a"]), "--faces-b",
               str(faces["b"]), "--output", str(output)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(source), "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.perf_counter()
    child = subprocess.Popen(
        command, cwd=source, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    errors = child.stderr.read().decode(errors="replace")
    child.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = "\n".join(errors.strip().splitlines()[-5:])
        print(f"evaluate failed (exit {code}): {tail}", file=sys.stderr)
    return usage.ru_maxrss * 1024 / 1e9, seconds, code  # ru_maxrss is in KiB


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[90, 355, 2000])
    parser.add_argument("--preset", default="standard", choices=("lite", "standard"))
    parser.add_argument("--source", type=Path, default=REPO)
    parser.add_argument("--work", type=Path, default=None, help="keep files here")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="eval_memory-"))
    try:
        run_dir = work / "run"
        if not (run_dir / "checkpoints").is_dir():
            make_run(run_dir, args.preset)
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
        print(
            f"preset {args.preset} 64 px, self-attention; code: {args.source}; "
            f"this process's peak {own:.2f} GB (a floor of the figures)"
        )
        print("| faces per person | peak RSS (GB) | seconds | s per face |")
        print("|---:|---:|---:|---:|")
        peaks = {}
        for count in args.sizes:
            faces = {p: work / f"faces_{count}" / p for p in PEOPLE}
            for person, folder in faces.items():
                if not folder.is_dir():
                    make_faces(folder, real_crops(person), count)
            peak, seconds, code = run_evaluate(
                run_dir, faces, work / f"eval_{count}", args.source
            )
            failed = "" if code == 0 else f" (failed, exit {code})"
            print(
                f"| {count} | {peak:.2f}{failed} | {seconds:.0f} | "
                f"{seconds / (2 * count):.3f} |",
                flush=True,
            )
            peaks[count] = peak
            shutil.rmtree(work / f"eval_{count}", ignore_errors=True)
        reference = 355 if 355 in peaks else min(peaks)
        largest = max(peaks)
        print(
            f"peak({largest}) / peak({reference}) = "
            f"{peaks[largest] / peaks[reference]:.2f}"
        )
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
