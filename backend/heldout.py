"""The real speech no model may train on: the Kathleen held-out prompts and the unseen-speaker folder.

They exist to tell whether a model generalises to sentences and voices it never heard, so every corpus
builder and training reader asks this module before using a recording, and the real-speech benchmark
scores exactly these.

The Kathleen held-out rule: every CMU ARCTIC prompt whose number ends in 8 (`arctic_a0008`, `arctic_a0018`,
…, `arctic_b0538`), with all takes of each prompt. Of the 992 prompts in `shared/speech/kathleen` that is
99 prompts and 153 utterances (10.7 % of 1,429). A rule on the prompt number, not a random draw, so it
never changes when recordings are added and anyone can check it by eye.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HELDOUT_LAST_DIGIT = 8
DEV_FOLDER = "dev"    # shared/speech/dev: 5 speakers who are not Kathleen; never train on any of it
KATHLEEN_FOLDER = "kathleen"
LABELS_SUFFIX = ".phones.lab"

_ARCTIC_PROMPT = re.compile(r"^(arctic_[ab]\d{4})(?:_.*)?$")


def prompt_id(utterance_id: str) -> str | None:
    """`arctic_a0008` for `arctic_a0008_1592748574` (a take of that prompt), None for a non-ARCTIC name."""
    match = _ARCTIC_PROMPT.match(utterance_id)
    return match.group(1) if match else None


def is_heldout(utterance_id: str) -> bool:
    """True when the utterance is a take of a held-out Kathleen prompt (prompt number ending in 8)."""
    prompt = prompt_id(utterance_id)
    return prompt is not None and int(prompt[-4:]) % 10 == HELDOUT_LAST_DIGIT


def is_dev_folder(folder) -> bool:
    """True for the unseen-speaker folder (`…/speech/dev`), which no corpus may read."""
    return Path(folder).resolve().name == DEV_FOLDER and Path(folder).resolve().parent.name == "speech"


@dataclass
class Utterance:
    """A labelled recording for evaluation: float mono audio at `rate` Hz and its phone timeline
    [(start_s, end_s, ARPAbet label), ...]."""

    name: str
    audio: np.ndarray
    rate: int
    timeline: list


def labelled_utterances(folder, keep, rate: int = 16_000) -> list[Utterance]:
    """The `<name>.flac` + `<name>.phones.lab` pairs of a folder whose name passes `keep`, in name order."""
    from backend.audio import load_audio
    from backend.rig.timeline import read_lab
    folder, utterances = Path(folder), []
    for lab in sorted(folder.glob(f"*{LABELS_SUFFIX}")):
        name = lab.name[: -len(LABELS_SUFFIX)]
        if keep(name):
            audio, _ = load_audio(folder / f"{name}.flac", rate)
            utterances.append(Utterance(name, audio, rate, read_lab(lab)))
    return utterances


def heldout_utterances(shared, rate: int = 16_000) -> list[Utterance]:
    """Every take of the held-out Kathleen prompts (153 utterances), from `<shared>/speech/kathleen`."""
    return labelled_utterances(Path(shared) / "speech" / KATHLEEN_FOLDER, is_heldout, rate)


def dev_utterances(shared, rate: int = 16_000) -> list[Utterance]:
    """The labelled utterances of the unseen-speaker folder `<shared>/speech/dev`."""
    return labelled_utterances(Path(shared) / "speech" / DEV_FOLDER, lambda name: True, rate)
