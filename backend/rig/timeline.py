"""Phone timelines: the `.phones.lab` reader and the phonetic classes of the 39 ARPAbet phones + SIL.

A timeline is a list of `(start_s, end_s, label)` tuples, contiguous in time, labels from `PHONES`.
"""

from pathlib import Path

import numpy as np

from backend.errors import AudioError

VOWELS = ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW")
CONSONANTS = ("B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R", "S", "SH",
              "T", "TH", "V", "W", "Y", "Z", "ZH")
SILENCE = "SIL"
PHONES = VOWELS + CONSONANTS + (SILENCE,)

BILABIALS = ("P", "B", "M")
LABIODENTALS = ("F", "V")

# Jaw openness of each vowel, 0 (close) .. 1 (open), from the IPA vowel height of its General American
# realisation (close i/u 0.1-0.15, near-close 0.25-0.3, close-mid 0.4, mid 0.45, open-mid 0.6-0.7,
# near-open 0.85, open 1.0); diphthongs use the mean height over their trajectory.
VOWEL_OPENNESS = {
    "IY": 0.10, "UW": 0.15, "IH": 0.28, "UH": 0.30, "EY": 0.40, "OW": 0.45, "ER": 0.40, "AH": 0.60,
    "EH": 0.62, "AO": 0.75, "OY": 0.55, "AE": 0.85, "AY": 0.70, "AW": 0.72, "AA": 1.00,
}

# Lip rounding (0..1) of rounded vowels and labialised consonants, and spreading of front vowels.
ROUNDING = {"UW": 1.0, "OW": 0.8, "UH": 0.6, "OY": 0.6, "AO": 0.5, "AW": 0.4, "ER": 0.3, "W": 1.0,
            "R": 0.4, "SH": 0.5, "ZH": 0.5, "CH": 0.45, "JH": 0.45}
SPREADING = {"IY": 1.0, "IH": 0.6, "EY": 0.6, "AE": 0.5, "EH": 0.4, "Y": 0.6, "S": 0.3, "Z": 0.3}


def read_lab(path) -> list[tuple[float, float, str]]:
    """Read a `start_s end_s LABEL` file (tabs or spaces); AudioError says which line is wrong."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: phone label file not found; expected a .lab file with 'start_s end_s PHONE' lines")
    timeline = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 3:
            raise AudioError(f"{path}:{number}: found {len(fields)} fields in {line!r}; expected 'start_s end_s PHONE'")
        try:
            start, end = float(fields[0]), float(fields[1])
        except ValueError:
            raise AudioError(f"{path}:{number}: times {fields[0]!r} {fields[1]!r} are not numbers; "
                             "expected 'start_s end_s PHONE'") from None
        timeline.append((start, end, fields[2].upper()))
    check_timeline(timeline, str(path))
    return timeline


def check_timeline(timeline, source: str = "timeline") -> None:
    """Raise AudioError unless the timeline is non-empty, in order, non-overlapping, with known phones."""
    if not timeline:
        raise AudioError(f"{source}: has no phones; expected at least one 'start_s end_s PHONE' entry")
    previous_end = 0.0
    for index, (start, end, label) in enumerate(timeline):
        if label not in PHONES:
            raise AudioError(f"{source}: phone {index} is {label!r}; expected one of the 39 ARPAbet phones or SIL")
        if not (0.0 <= start < end):
            raise AudioError(f"{source}: phone {index} ({label}) runs from {start} s to {end} s; "
                             "expected 0 <= start < end")
        if start < previous_end - 1e-6:
            raise AudioError(f"{source}: phone {index} ({label}) starts at {start} s, before the previous "
                             f"phone ends ({previous_end} s); phones must be in order without overlap")
        previous_end = end



def phone_frames(timeline, frame_times: np.ndarray, phones) -> np.ndarray:
    """Frame indices inside any phone of `phones`; a phone no frame falls in gets its nearest frame."""
    chosen = []
    for start, end, label in timeline:
        if label in phones:
            chosen.extend(segment_frames(start, end, frame_times))
    return np.unique(np.array(chosen, dtype=np.int64))


def segment_frames(start: float, end: float, frame_times: np.ndarray) -> np.ndarray:
    """Frames with start <= time < end, or the one frame nearest the segment's centre if none."""
    inside = np.flatnonzero((frame_times >= start) & (frame_times < end))
    return inside if inside.size else np.array([int(np.argmin(np.abs(frame_times - (start + end) / 2)))])
