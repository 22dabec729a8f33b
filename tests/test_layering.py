"""The package's layers: the library never imports the converter application.

The library is every module of `faceswap_gan` except the application layer
(`faceswap_gan/commands/`, `faceswap_gan/demo.py`, `faceswap_gan/cli.py`); `converter`
builds on the library, never the reverse. Checked on the source with `ast`, so imports
inside functions count too.
"""

import ast
from pathlib import Path

import numpy as np

PACKAGE = Path(__file__).resolve().parents[1] / "faceswap_gan"
APPLICATION = ("commands", "demo.py", "cli.py", "__main__.py")


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def _library_modules() -> list[Path]:
    return [
        path
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0] not in APPLICATION
    ]


def test_the_library_never_imports_converter():
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
        for path in _library_modules()
        for line, name in _imported_modules(path)
        if name == "converter" or name.startswith("converter.")
    ]
    assert offenders == []


def test_the_check_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from converter.pipeline import VideoConverter\n")
    assert _imported_modules(module) == [(2, "converter.pipeline")]
    assert len(_library_modules()) > 30 and not any(
        "commands" in p.parts for p in _library_modules()
    )


def _package_imports(relative: str) -> set[str]:
    return {
        name
        for _, name in _imported_modules(PACKAGE / relative)
        if name.startswith("faceswap_gan")
    }


def test_dependencies_point_down():
    # config is a leaf: constants and dataclasses that every module may use.
    allowed = {"faceswap_gan", "faceswap_gan.errors", "faceswap_gan.files"}
    assert _package_imports("config.py") <= allowed
    # layers know nothing of the configs or models built from them.
    for layer in (PACKAGE / "layers").glob("*.py"):
        assert all(
            name.startswith("faceswap_gan.layers")
            for name in _package_imports(f"layers/{layer.name}")
        ), layer.name
    # alignment takes the image convention from images, not from the detector.
    assert "faceswap_gan.faces.detection" not in _package_imports("faces/alignment.py")


def test_every_configured_norm_builds():
    from faceswap_gan.config import NORMS
    from faceswap_gan.layers.normalization import NORMALIZATIONS, normalization

    assert sorted(NORMS) == sorted(NORMALIZATIONS)
    for kind in NORMS:
        layer = normalization(kind, name=f"n_{kind}", group=4)
        assert layer(np.ones((1, 4, 4, 32), "float32")).shape == (1, 4, 4, 32)
