"""The notebooks: thin drivers that run headless, start to end, on the bundled clips.

Each notebook is executed with nbclient in a fresh python3 kernel of this interpreter,
with tiny settings injected right after its `parameters`-tagged cell (as papermill
does); any cell error fails the test. The conversion notebook gets the run folder the
training notebook wrote.
"""

import ast
import os
import sys
from pathlib import Path

import av
import nbformat
import pytest
from nbclient import NotebookClient

from faceswap_gan.images import list_images, read_mask

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
NAMES = (
    "video_face_detection_alignment",
    "prep_binary_masks",
    "faceswap_train",
    "faceswap_video_conversion",
    "faceswap_demo",
)
FACES = REPO / "tests" / "data" / "faces"


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def _parameters_index(nb) -> int:
    tagged = [
        i
        for i, cell in enumerate(nb.cells)
        if "parameters" in cell.metadata.get("tags", [])
    ]
    assert len(tagged) == 1, "exactly one cell must be tagged 'parameters'"
    return tagged[0]


def _python_source(source: str) -> str:
    """Cell source with IPython `!shell` and `%magic` lines replaced by `pass`."""
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("!", "%")):
            line = line[: len(line) - len(stripped)] + "pass"
        lines.append(line)
    return "\n".join(lines)


def execute(name: str, cwd: Path, **overrides) -> nbformat.NotebookNode:
    """Runs notebook `name` in `cwd` with `overrides` assigned after its parameters."""
    nb = _read(name)
    index = _parameters_index(nb)
    known = {
        t.id
        for t in ast.walk(ast.parse(nb.cells[index].source))
        if isinstance(t, ast.Name)
    }
    unknown = set(overrides) - known
    assert not unknown, f"not parameters of {name}: {unknown}"
    cell = nbformat.v4.new_code_cell(
        "\n".join(f"{key} = {value!r}" for key, value in overrides.items())
    )
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(index + 1, cell)
    # The kernel is this interpreter: its folder goes first on PATH for `python`.
    env = dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="2",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    client = NotebookClient(
        nb,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute(env=env)
    return nb


def _outputs(nb, mime: str) -> list:
    """Display outputs of all code cells that carry `mime` data."""
    return [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type in ("display_data", "execute_result") and mime in o.data
    ]


@pytest.mark.parametrize("name", NAMES)
def test_notebook_structure(name):
    nb = _read(name)
    code = [c for c in nb.cells if c.cell_type == "code"]
    setup = code[0].source
    assert '"google.colab" in sys.modules' in setup and "drive.mount" in setup
    assert 'list_physical_devices("GPU")' in setup
    assert code[1] is nb.cells[_parameters_index(nb)]  # parameters come right after
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)


def _setup_source(name: str) -> str:
    return next(c.source for c in _read(name).cells if c.cell_type == "code")


def _run_setup_on_colab(name: str, monkeypatch, **form) -> list:
    """Executes `name`'s setup cell as Colab would, with the form fields set and a
    stand-in for google.colab's Drive; returns the folders it mounted. The cell must
    stop before it installs anything (every test here gives no usable source)."""
    import types

    mounted = []
    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=mounted.append)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    source = _setup_source(name)
    for key, value in form.items():
        assert f"{key} = " in source, f"{name}: no form field {key}"
        source = source.replace(f"\n{key} = ", f"\n{key} = {value!r}  # ", 1)
    exec(compile(source, f"{name}:setup", "exec"), {})
    return mounted


@pytest.mark.parametrize("name", NAMES)
def test_setup_cell_has_a_working_install_source(name, tmp_path, monkeypatch):
    source = _setup_source(name)
    assert "OWNER" not in source.replace('"OWNER" not in', "")  # no placeholder URL
    assert source.startswith("# @title") and '# @param {type:"string"}' in source
    nothing = {"DRIVE_COPY": str(tmp_path / "none"), "UPLOADED_ZIP": ""}
    for url in ("", "https://github.com/OWNER/faceswap-gan.git"):
        with pytest.raises(SystemExit, match="set REPO_URL .* then run the cell"):
            _run_setup_on_colab(name, monkeypatch, REPO_URL=url, **nothing)


@pytest.mark.parametrize("name", NAMES)
def test_code_cells_define_no_functions_or_classes(name):
    for cell in _read(name).cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(_python_source(cell.source))
        kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        defined = [n for n in ast.walk(tree) if isinstance(n, kinds)]
        assert not defined, f"{name}: a notebook cell defines {defined[0].name}"


@pytest.mark.slow
def test_extraction_notebook(tmp_path):
    nb = execute(
        "video_face_detection_alignment",
        tmp_path,
        OUTPUT_A="faceA",
        OUTPUT_B="faceB",
        EVERY=90,
        SHOW=2,
    )  # frames 0 and 90 of each bundled clip, both people in one run
    for person in ("faceA", "faceB"):
        faces = tmp_path / person / "faces"
        names = sorted(p.name for p in list_images(faces / "aligned_faces"))
        assert names == sorted(f"frame{i}face0.jpg" for i in (0, 90))
        for folder in ("raw_faces", "binary_masks_eyes"):
            assert sorted(p.name for p in list_images(faces / folder)) == names
        mask = read_mask(faces / "binary_masks_eyes" / names[0])
        assert 0.005 < float((mask > 0.5).mean()) < 0.2  # landmark eyes, as extract
    assert len(_outputs(nb, "image/png")) == 1  # the grid


@pytest.mark.slow
def test_masks_notebook(tmp_path):
    nb = execute(
        "prep_binary_masks",
        tmp_path,
        FACES_A=str(FACES / "a"),
        MASKS_A="masksA",
        FACES_B=str(FACES / "b"),
        MASKS_B="masksB",
        SHOW=3,
    )
    for person in ("a", "b"):
        faces = list_images(FACES / person)
        masks = list_images(tmp_path / f"masks{person.upper()}")
        assert [p.name for p in masks] == [p.name for p in faces]
        covered = [float((read_mask(p) > 0.5).mean()) for p in masks]
        # Eyes cover a small, non-zero part of a 256 px face crop.
        assert sum(0.005 < c < 0.2 for c in covered) >= len(masks) - 2
    assert len(_outputs(nb, "image/png")) == 1


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """(notebook, run folder) of the training notebook at the tiny preset's size."""
    cwd = tmp_path_factory.mktemp("train_notebook")
    nb = execute(
        "faceswap_train",
        cwd,
        FACES_A=str(FACES / "a"),
        FACES_B=str(FACES / "b"),
        MASKS_A=None,
        MASKS_B=None,
        RUN_DIR="run",
        LATENT_DIM=128,
        TOTAL_ITERS=4,
        BATCH_SIZE=2,
        DISPLAY_ITERS=2,
        BACKUP_ITERS=0,
        SCHEDULE="constant",
    )
    return nb, cwd / "run"


@pytest.mark.slow
def test_training_notebook(trained_run):
    nb, run_dir = trained_run
    previews = (run_dir / "previews").glob("step_*")
    steps = sorted(int(p.stem.split("_")[1]) for p in previews)
    assert steps == [2, 4]
    assert (run_dir / "loss.png").is_file() and (run_dir / "checkpoints").is_dir()
    views = _outputs(nb, "application/vnd.jupyter.widget-view+json")
    assert any("SelectionSlider" in o.data.get("text/plain", "") for o in views)
    assert len(_outputs(nb, "image/png")) == 2  # training data, preview + losses


@pytest.mark.slow
def test_conversion_notebook(trained_run, tmp_path):
    _, run_dir = trained_run
    nb = execute(
        "faceswap_video_conversion",
        tmp_path,
        MODEL=str(run_dir),
        OUTPUT_VIDEO="out.mp4",
        MAX_FRAMES=6,
        SHOW_FRAMES=2,
    )
    with av.open(str(tmp_path / "out.mp4")) as container:
        video = container.streams.video[0]
        assert video.codec_context.name == "h264" and container.streams.audio
        assert (video.width, video.height) == (2 * 480, 480)  # COMBINED
        assert sum(1 for _ in container.decode(video=0)) == 6
    html = _outputs(nb, "text/html")
    assert any("<video" in o.data["text/html"] for o in html)  # embedded result
    assert len(_outputs(nb, "image/png")) == 1  # frames of the result


@pytest.mark.slow
def test_demo_notebook(tmp_path):
    execute(
        "faceswap_demo",
        tmp_path,
        OUTPUT_DIR="demo",
        ITERATIONS=2,
        EVERY=40,  # 5 faces per clip: at least one batch of the demo's 4
        PRESET="tiny",
        MAX_FRAMES=4,
    )
    demo = tmp_path / "demo"
    for side in "ab":
        assert len(list_images(demo / f"faces_{side}" / "faces" / "aligned_faces")) == 5
    assert (demo / "run-tiny" / "loss.png").is_file()
    with av.open(str(demo / "person_a_to_b.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 4
