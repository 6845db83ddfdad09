"""What a training run records about its data: read from the data folder's manifest.json (our corpus writes
one with `synthetic`, `preset`, `seed`); a folder without a manifest (converted VOCASET, BIWI, ...) is recorded
as not synthetic. The folder is kept by name only: exported models carry no local paths."""

import json
from pathlib import Path

from backend.errors import BackendError

MANIFEST_FILE = "manifest.json"


def data_provenance(folder, train_clips: int | None = None) -> dict:
    """{"folder", "manifest" (bool), "synthetic" (bool), "preset", "seed", "train_clips"} of a data folder."""
    path = Path(folder) / MANIFEST_FILE
    manifest = {}
    if path.is_file():
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise BackendError(f"{path}: not valid JSON ({error})") from None
    return {"folder": Path(folder).resolve().name, "manifest": path.is_file(),
            "synthetic": manifest.get("synthetic") is True, "preset": manifest.get("preset"),
            "seed": manifest.get("seed"), "train_clips": train_clips}
