"""The package's layers: the library never imports the converter application.

The library is every module of `faceswap_gan` except the application layer
(`faceswap_gan/commands/`, `faceswap_gan/demo.py`, `faceswap_gan/cli.py`); `converter`
builds on the library, never the reverse. Checked on the source with `ast`, so imports
inside functions count too.
"""

import ast
from pathlib import Path

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
