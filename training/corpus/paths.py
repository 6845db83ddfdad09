"""Where the corpus tools find their inputs: the FLAME template, its masks and the recorded speech.

Explicit paths win, then the environment ($FLAME_TEMPLATE, $FLAME_MASKS, $SPEECH_DIR), then ../shared beside
the repository. One home, so build, stats, render and the representation read the same files.
"""

import os
from pathlib import Path

from backend.flame import find_masks_path, find_template_path

SPEECH_ENV = "SPEECH_DIR"
_DEFAULT_SHARED = Path(__file__).resolve().parents[2].parent / "shared"


def default_paths(template=None, masks=None, speech=None) -> tuple[Path, Path, Path]:
    """Template, masks and recorded-speech folder: explicit, else environment, else ../shared."""
    if template is None and not os.environ.get("FLAME_TEMPLATE"):
        template = _DEFAULT_SHARED / "flame" / "FLAME_sample.ply"
    if masks is None and not os.environ.get("FLAME_MASKS"):
        masks = Path(template).parent / "FLAME_masks.npz" if template is not None else None
    speech = Path(speech or os.environ.get(SPEECH_ENV) or _DEFAULT_SHARED / "speech" / "kathleen")
    return find_template_path(template), find_masks_path(masks), speech
