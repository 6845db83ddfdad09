"""What a training run records about its data: read from the data folder's manifest.json (our corpus writes
one with `synthetic`, `preset`, `seed`); a folder without a manifest (converted VOCASET, BIWI, ...) is recorded
as not synthetic. The folder is kept by name only: exported models carry no local paths."""

import json
from pathlib import Path

from backend.errors import BackendError

MANIFEST_FILE = "manifest.json"


def data_provenance(folder, train_clips: int | None = None) -> dict:
    """{"folder", "manifest" (bool), "synthetic" (bool), "preset", "seed", "train_clips", "hours", "sources"} of a
    data folder; hours: the manifest's stats.hours (None without); sources: {clip source (the manifest's
    "source", e.g. kathleen, espeak, flite): [clips, hours]} over every clip of the manifest."""
    path = Path(folder) / MANIFEST_FILE
    manifest = {}
    if path.is_file():
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise BackendError(f"{path}: not valid JSON ({error})") from None
    sources = {}
    for clip in manifest.get("clips", []):
        if isinstance(clip, dict):
            entry = sources.setdefault(str(clip.get("source", "unknown")), [0, 0.0])
            entry[0] += 1
            entry[1] += float(clip.get("duration_s") or 0.0) / 3600
    stats = manifest.get("stats") if isinstance(manifest.get("stats"), dict) else {}
    return {"folder": Path(folder).resolve().name, "manifest": path.is_file(),
            "synthetic": manifest.get("synthetic") is True, "preset": manifest.get("preset"),
            "seed": manifest.get("seed"), "train_clips": train_clips, "hours": stats.get("hours"),
            "sources": {name: [count, round(hours, 3)] for name, (count, hours) in sorted(sources.items())}}
