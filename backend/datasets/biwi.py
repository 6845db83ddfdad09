"""BIWI in FaceFormer's converted release: `vertices_npy/F2_e01.npy`, `wav/F2_e01.wav`, `templates.pkl`.

Same layout as `converted.py`, but 25 fps, 23370-vertex topology (taken from the templates; nothing
here assumes a vertex count) and the BIWI splits (train / val / test-a / test-b).
"""

import re
from typing import Optional, Tuple

from backend.datasets.converted import ConvertedDataset
from backend.datasets.splits import BIWI_SPLITS

BIWI_NAME = re.compile(r"^(?P<subject>[FM]\d+)_(?P<sentence>e\d+)$")


class BiwiDataset(ConvertedDataset):
    """BIWI clips named `<F2|M3...>_e<NN>` at 25 fps."""
    kind = "biwi"
    native_fps = 25.0
    split_table = BIWI_SPLITS
    naming = "<F|M><n>_e<NN> (e.g. F2_e01)"

    @staticmethod
    def parse_name(stem: str) -> Optional[Tuple[str, str, Optional[int]]]:
        match = BIWI_NAME.match(stem)
        return (match["subject"], match["sentence"], None) if match else None
