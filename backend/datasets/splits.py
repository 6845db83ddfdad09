"""Published train/val/test splits (REFERENCE §5), as data.

VOCASET (FaceFormer, CodeTalker, SelfTalk): 8 training subjects with sentences 1-40, 2 validation
and 2 test subjects with sentences 21-40. BIWI (FaceFormer): 6 seen subjects with sentences 1-32
for training, 33-36 for validation, 37-40 for Test-A; Test-B holds the other 8 subjects (their
sentences 37-40 in FaceFormer's release; here any sentence of theirs counts as Test-B).
"""

from typing import Dict, List, Optional, Tuple

SplitTable = Dict[str, List[Tuple[Tuple[str, ...], range]]]

_VOCASET_TRAIN_SUBJECTS = tuple(f"FaceTalk_{code}_TA" for code in (
    "170728_03272", "170904_00128", "170725_00137", "170915_00223",
    "170811_03274", "170913_03279", "170904_03276", "170912_03278"))
_VOCASET_VAL_SUBJECTS = ("FaceTalk_170811_03275_TA", "FaceTalk_170908_03277_TA")
_VOCASET_TEST_SUBJECTS = ("FaceTalk_170809_00138_TA", "FaceTalk_170731_00024_TA")

VOCASET_SPLITS: SplitTable = {
    "train": [(_VOCASET_TRAIN_SUBJECTS, range(1, 41))],
    "val": [(_VOCASET_VAL_SUBJECTS, range(21, 41))],
    "test": [(_VOCASET_TEST_SUBJECTS, range(21, 41))],
}

_BIWI_SEEN_SUBJECTS = ("F2", "F3", "F4", "M3", "M4", "M5")
_BIWI_UNSEEN_SUBJECTS = ("F1", "F5", "F6", "F7", "F8", "M1", "M2", "M6")

BIWI_SPLITS: SplitTable = {
    "train": [(_BIWI_SEEN_SUBJECTS, range(1, 33))],
    "val": [(_BIWI_SEEN_SUBJECTS, range(33, 37))],
    "test-a": [(_BIWI_SEEN_SUBJECTS, range(37, 41))],
    "test-b": [(_BIWI_UNSEEN_SUBJECTS, range(1, 41))],
}


def split_of(table: SplitTable, subject: str, sentence: Optional[int]) -> Optional[str]:
    """The split holding (subject, sentence number) in `table`, or None if no split does."""
    for name, rules in table.items():
        for subjects, sentences in rules:
            if subject in subjects and sentence in sentences:
                return name
    return None
