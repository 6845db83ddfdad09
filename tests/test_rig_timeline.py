"""The .phones.lab reader, timeline checks and frame selection of backend.rig.timeline."""

import numpy as np
import pytest

from backend.errors import AudioError
from backend.rig.timeline import PHONES, VOWEL_OPENNESS, VOWELS, phone_frames, read_lab, segment_frames


def _lab(tmp_path, text):
    path = tmp_path / "clip.phones.lab"
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_real_alignment(speech_dir):
    path = sorted(speech_dir.glob("*.phones.lab"))[0]
    timeline = read_lab(path)
    assert timeline[0][0] == 0.0
    assert all(label in PHONES for _, _, label in timeline)
    assert all(end <= next_start + 1e-9 for (_, end, _), (next_start, _, _) in zip(timeline, timeline[1:]))


def test_reads_tabs_spaces_and_lowercase(tmp_path):
    timeline = read_lab(_lab(tmp_path, "0.00\t0.10\tsil\n0.10 0.25 AA\n\n0.25 0.30 p\n"))
    assert timeline == [(0.0, 0.1, "SIL"), (0.1, 0.25, "AA"), (0.25, 0.3, "P")]


@pytest.mark.parametrize("text, message", [
    ("0.0 0.1\n", "found 2 fields"),
    ("0.0 x AA\n", "are not numbers"),
    ("0.0 0.1 QQ\n", "phone 0 is 'QQ'"),
    ("0.2 0.1 AA\n", "expected 0 <= start < end"),
    ("0.0 0.2 AA\n0.1 0.3 B\n", "before the previous phone ends"),
    ("\n", "has no phones"),
])
def test_bad_lab_files_say_what_is_wrong(tmp_path, text, message):
    with pytest.raises(AudioError, match=message):
        read_lab(_lab(tmp_path, text))


def test_missing_lab_file(tmp_path):
    with pytest.raises(AudioError, match="phone label file not found"):
        read_lab(tmp_path / "absent.phones.lab")


def test_every_vowel_has_an_openness_in_range():
    assert set(VOWEL_OPENNESS) == set(VOWELS)
    assert all(0.0 <= value <= 1.0 for value in VOWEL_OPENNESS.values())
    assert VOWEL_OPENNESS["AA"] > VOWEL_OPENNESS["EH"] > VOWEL_OPENNESS["IY"]


def test_short_segments_get_their_nearest_frame():
    times = np.arange(10) / 30
    assert segment_frames(0.1, 0.2, times).tolist() == [3, 4, 5]
    assert segment_frames(0.105, 0.115, times).tolist() == [3]
    timeline = [(0.0, 0.1, "SIL"), (0.1, 0.12, "P"), (0.12, 0.3, "AA")]
    assert phone_frames(timeline, times, ("P",)).tolist() == [3]
