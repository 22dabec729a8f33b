"""Shared fixtures: paths to the repository's real test data."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"


@pytest.fixture(scope="session")
def test_data() -> Path:
    return TEST_DATA


@pytest.fixture(scope="session")
def faces_a() -> Path:
    """16 real 256x256 face crops of person A (from shared/data/faces/lp_d6)."""
    return TEST_DATA / "faces" / "a"


@pytest.fixture(scope="session")
def faces_b() -> Path:
    """16 real 256x256 face crops of person B (from shared/data/faces/lp_d10)."""
    return TEST_DATA / "faces" / "b"


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow",
        action="store_true",
        help="also run the end-to-end tests marked slow (CI runs them; minutes)",
    )


def pytest_collection_modifyitems(config, items):
    """Deselects `slow` tests unless --run-slow is given or -m names the marker, so
    that plain `python -m pytest` is the fast suite."""
    if config.getoption("--run-slow") or "slow" in (config.getoption("-m") or ""):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]
