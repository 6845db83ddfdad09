"""MEAD-3D clips in the converted layout, named `<id>_<emotion>_level_<n>_<clip>` (REFERENCE §5).

Assumptions (MEAD-3D is not public; this follows the naming in the metric code): the files sit in
the converted layout (`vertices_npy/`, `wav/`, `templates.pkl` keyed by `<id>`), FLAME topology,
30 fps (the paper's dataset table). The subject is `<id>`, the level is `<n>` (1..3), and the
sentence is `<emotion>_<clip>` (assuming MEAD numbers a sentence alike at every level; the level
is kept apart in `Clip.level`).
There is no published split, so `split=` is refused.
"""

import re
from typing import Optional, Tuple

from backend.datasets.converted import ConvertedDataset

# The one MEAD-3D name pattern (readers and scoring alike); the clip part may itself hold underscores.
MEAD_NAME = re.compile(r"^(?P<subject>[^_]+)_(?P<emotion>[^_]+)_level_(?P<level>\d+)_(?P<clip>.+)$")


class MeadDataset(ConvertedDataset):
    """MEAD-3D clips with their intensity level parsed from the name."""
    kind = "mead"
    native_fps = 30.0
    split_table = {}
    naming = "<id>_<emotion>_level_<n>_<clip> (e.g. M003_angry_level_3_001)"

    @staticmethod
    def parse_name(stem: str) -> Optional[Tuple[str, str, Optional[int]]]:
        match = MEAD_NAME.match(stem)
        if match is None:
            return None
        return match["subject"], f"{match['emotion']}_{match['clip']}", int(match["level"])
