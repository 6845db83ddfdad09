"""Where the shipped ONNX models live: `models/<name>/` beside the `backend` package, which is the
repository's models folder in a checkout and the bundled copy when the add-on ships backend + models."""

import hashlib
from pathlib import Path

SPEECH_MESH = "speech_mesh"          # the speech-mesh representation (the critic of the perceptual loss)
PLRS_EVALUATOR = "plrs_evaluator"    # the independent PLRS evaluator (backend.metrics.plrs)


def default_models_dir(name: str = SPEECH_MESH) -> Path:
    """The folder of the shipped model set `name` (it may be absent, e.g. in a stripped install)."""
    return Path(__file__).resolve().parents[1] / "models" / name


def file_sha256(path) -> str:
    """Hex SHA-256 of the file at `path`, read in 1 MiB blocks: which weights a cache or a model card came from."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
