"""Shared fixtures: the licensed assets in ../shared are read in place, never copied."""

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED_DIR", REPO.parent / "shared"))


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
def flame_mesh(flame_ply):
    """The FLAME template as read_mesh reads it (a Mesh: float64 vertices, int64 faces)."""
    from backend.mesh import read_mesh
    return read_mesh(flame_ply)


@pytest.fixture(scope="session")
def flame_and_regions(flame_ply, flame_masks):
    """(template (5023, 3) float64, FlameRegions): what the metric tests animate and score."""
    import numpy as np
    from backend.flame import FlameRegions
    from backend.mesh import load_flame_mesh
    return load_flame_mesh(flame_ply).vertices.astype(np.float64), FlameRegions.load(flame_masks)


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    return _shared_path("speech", "kathleen")


@pytest.fixture
def models_dir(tmp_path) -> Path:
    """A generators folder holding the hand-built ONNX "offset" generator (tests/onnx_test_models.py)."""
    from onnx_test_models import write_generator
    root = tmp_path / "generators"
    write_generator(root / "offset")
    return root


@pytest.fixture(scope="session")
def ci_corpus(tmp_path_factory, flame_ply, flame_masks, speech_dir) -> Path:
    """The SYNTHETIC ci-preset corpus (seed 0), built once per test session (~5 s)."""
    from training.corpus.build import build_corpus
    root = tmp_path_factory.mktemp("ci_corpus")
    build_corpus(root, "ci", seed=0, template=flame_ply, masks=flame_masks, speech=speech_dir, show_progress=False)
    return root


@pytest.fixture(scope="session")
def codetalker_runs(tmp_path_factory, ci_corpus) -> Path:
    """Tiny CodeTalker-style runs on the ci corpus (~30 s): stage 1 (VQ autoencoder) in vq/, stage 2 (code
    predictor on the frozen prior) in stage2/."""
    import torch
    from tiny_runs import TINY
    from training.__main__ import main as training_main
    root = tmp_path_factory.mktemp("codetalker")
    torch.set_num_threads(1)
    assert training_main(["train", *TINY, "--family", "codetalker-vq", "--corpus", str(ci_corpus),
                          "--out", str(root / "vq")]) == 0
    assert training_main(["train", *TINY, "--family", "codetalker", "--set",
                          f"codetalker.motion_prior={root / 'vq' / 'checkpoint.pt'}", "--corpus", str(ci_corpus),
                          "--out", str(root / "stage2")]) == 0
    return root


@pytest.fixture(autouse=True)
def single_torch_thread():
    """Tests whose module uses torch run it on one thread: small models are fastest so on 2 shared cores."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


_SESSION = {}


def pytest_sessionfinish(session, exitstatus):
    _SESSION["exit_status"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Leave without C++ static destructors once bpy was imported in this process: pip bpy 4.5's global state
    destroys a condition variable its sound thread still waits on, so a run whose tests imported bpy could hang
    for ever at exit (seen with `-k` selections; the threads are bpy's own, nothing of ours is lost: every test
    result is already reported and every file we write is written atomically before this)."""
    if "bpy" in sys.modules and "exit_status" in _SESSION:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_SESSION["exit_status"])
