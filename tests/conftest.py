"""Shared fixtures: the licensed assets in ../shared are read in place, never copied."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__import__("os").environ.get("SHARED_DIR", REPO.parent / "shared"))


def _shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the licensed FLAME/speech assets live in ../shared (not in the repo)")
    return path


@pytest.fixture(scope="session")
def flame_ply() -> Path:
    return _shared_path("flame", "FLAME_sample.ply")


@pytest.fixture(scope="session")
def flame_obj() -> Path:
    return _shared_path("flame", "head_template.obj")


@pytest.fixture(scope="session")
def flame_masks() -> Path:
    return _shared_path("flame", "FLAME_masks.npz")


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    return _shared_path("speech", "kathleen")
