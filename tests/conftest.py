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
