"""Checkpoint files of both wings: written atomically, read with torch.load(weights_only=True) (no code runs).

A checkpoint is a dict of tensors, state dicts, numbers and JSON strings. `load_checkpoint` turns every way
a file can be unusable (missing, unreadable, lacking the keys its reader needs) into one ModelError line.
"""

from pathlib import Path

import torch

from backend.atomic import atomic_stream
from backend.errors import ModelError

TEMPORARY_MARK = ".tmp"   # backend.atomic names its temporary files .<name>.<random>.tmp<suffix>


def remove_partial_files(folder) -> None:
    """Delete the temporary files of backend.atomic that a killed process left in `folder`."""
    for stale in Path(folder).glob(f".*{TEMPORARY_MARK}*"):
        stale.unlink()


def save_checkpoint(path, payload: dict) -> Path:
    """torch.save `payload` to `path` atomically (backend.atomic; the folder is made); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_stream(path) as stream:
        torch.save(payload, stream)
    return path


def load_checkpoint(path, required=(), written_by: str = "") -> dict:
    """The checkpoint at `path`; ModelError if it is missing, unreadable or lacks a `required` key (the message
    names `written_by`, the command that writes such checkpoints)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several unrelated types for unreadable files
        raise ModelError(f"{path}: not a readable checkpoint ({str(error).splitlines()[0]})") from None
    if not isinstance(checkpoint, dict):
        raise ModelError(f"{path}: not a checkpoint dict; expected one written by `{written_by or 'python -m training'}`")
    missing = [key for key in required if key not in checkpoint]
    if missing:
        raise ModelError(f"{path}: checkpoint lacks {', '.join(missing)}; expected one written by `{written_by}`")
    return checkpoint
