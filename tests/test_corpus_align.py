"""Forced alignment (pocketsphinx): transcript words, boundary matching, Kathleen and TTS checks, the CLI."""

import shutil

import numpy as np
import pytest

from backend.audio import load_audio
from backend.errors import AudioError
from training.corpus.align import Aligner, boundary_errors, transcript_words
from backend.rig.timeline import check_timeline, read_lab
from training.corpus.voices import engine_available, synthesise

pocketsphinx = pytest.importorskip("pocketsphinx", reason="pocketsphinx (training only) is not installed")

CLIPS = ("arctic_a0001_1592748574", "arctic_a0283_1592710575", "arctic_b0100_1592699285")


@pytest.fixture(scope="module")
def aligner():
    return Aligner()


def test_transcript_words_keep_letters_digits_and_inner_apostrophes():
    assert transcript_words("Author of the danger-trail, Philip Steels' etc. 'Don't' 42!") == \
        ["author", "of", "the", "danger", "trail", "philip", "steels", "etc", "don't", "42"]


def test_boundary_errors_count_only_edges_between_matched_phones():
    reference = [(0.0, 0.1, "SIL"), (0.1, 0.2, "B"), (0.2, 0.4, "AA"), (0.4, 0.5, "B"), (0.5, 0.7, "SIL")]
    hypothesis = [(0.0, 0.12, "SIL"), (0.12, 0.2, "B"), (0.2, 0.33, "AO"), (0.33, 0.5, "B"), (0.5, 0.7, "SIL")]
    assert boundary_errors(reference, hypothesis) == pytest.approx([0.02, 0.0])     # AA/AO edges skipped
    assert boundary_errors(reference, reference).tolist() == [0.0] * 4


def test_kathleen_alignment_matches_the_shipped_labels(aligner, speech_dir):
    """The shipped labels were made with pocketsphinx too: this checks the same labelling, not accuracy."""
    errors = []
    for clip in CLIPS:
        if not (speech_dir / f"{clip}.flac").is_file():
            pytest.skip(f"{clip} is not in {speech_dir}")
        audio, _ = load_audio(speech_dir / f"{clip}.flac", 16000)
        alignment = aligner.align(audio, (speech_dir / f"{clip}.txt").read_text(encoding="utf-8"), clip)
        check_timeline(alignment.phones, clip)
        assert alignment.phones[-1][1] == pytest.approx(len(audio) / 16000, abs=0.01)
        assert alignment.words[0][0] == 0.0 and alignment.words[-1][1] == alignment.phones[-1][1]
        errors += list(boundary_errors(read_lab(speech_dir / f"{clip}.phones.lab"), alignment.phones))
    assert len(errors) > 60 and np.median(errors) <= 0.010


@pytest.mark.skipif(not engine_available("flite"), reason="the flite engine is not installed here")
def test_alignment_of_synthetic_speech_is_close_to_the_engines_exact_times(aligner):
    """flite knows where its phones are: the aligner's boundaries agree to a median of <= 20 ms (measured
    10-12 ms over 5 voices and 15 sentences)."""
    text = "Probably the best part of my job is meeting people from other places."
    audio, timeline = synthesise(text, "flite:slt")
    errors = boundary_errors(timeline, aligner.align(audio, text, "flite slt").phones)
    assert len(errors) > 30 and np.median(errors) <= 0.020


def test_words_missing_from_cmudict_get_a_pronunciation(aligner):
    if not engine_available("flite"):
        pytest.skip("the flite engine is not installed here")
    text = "The zorblax flew over Quimbletown."
    audio, _ = synthesise(text, "flite:awb")
    alignment = aligner.align(audio, text, "made-up words")
    assert {"zorblax", "quimbletown"} <= {label for *_, label in alignment.words}


def test_bad_requests_are_refused_with_one_line(aligner):
    with pytest.raises(AudioError, match="transcript has no words"):
        aligner.align(np.zeros(16000, np.float32), " ... ", "empty")
    with pytest.raises(AudioError, match="lasts 0.010 s"):
        aligner.align(np.zeros(160, np.float32), "hello", "short")


def test_align_command_writes_labels_and_skips_a_bad_recording(tmp_path, speech_dir):
    from training.corpus.__main__ import main
    audio_dir, text_dir, out_dir = tmp_path / "audio", tmp_path / "text", tmp_path / "labels"
    audio_dir.mkdir()
    text_dir.mkdir()
    clip = CLIPS[0]
    shutil.copy(speech_dir / f"{clip}.flac", audio_dir / f"{clip}.flac")
    shutil.copy(speech_dir / f"{clip}.txt", text_dir / f"{clip}.txt")
    (audio_dir / "broken.wav").write_bytes(b"not audio at all")
    (text_dir / "broken.txt").write_text("hello", encoding="utf-8")
    shutil.copy(speech_dir / f"{clip}.flac", audio_dir / "untranscribed.flac")
    assert main(["align", "--audio", str(audio_dir), "--text", str(text_dir), "--out", str(out_dir)]) == 2
    assert sorted(path.name for path in out_dir.iterdir()) == [f"{clip}.phones.lab", f"{clip}.words.lab"]
    assert read_lab(out_dir / f"{clip}.phones.lab")[0][2] in ("AO", "SIL")
    assert main(["align", "--audio", str(tmp_path / "nowhere"), "--text", str(text_dir), "--out", str(out_dir)]) == 2


def test_align_keeps_labels_that_already_exist_unless_forced(tmp_path, speech_dir, capsys):
    from training.corpus.__main__ import main
    audio_dir, text_dir = tmp_path / "audio", tmp_path / "text"
    audio_dir.mkdir()
    text_dir.mkdir()
    clip = CLIPS[0]
    shutil.copy(speech_dir / f"{clip}.flac", audio_dir / f"{clip}.flac")
    shutil.copy(speech_dir / f"{clip}.txt", text_dir / f"{clip}.txt")
    corrected = "0.00\t0.50\tSIL\n0.50\t0.90\tM\n"          # labels the user fixed by hand
    (audio_dir / f"{clip}.phones.lab").write_text(corrected)
    argv = ["align", "--audio", str(audio_dir), "--text", str(text_dir), "--out", str(audio_dir)]
    assert main(argv) == 0
    assert (audio_dir / f"{clip}.phones.lab").read_text() == corrected
    assert not (audio_dir / f"{clip}.words.lab").exists()
    assert "1 kept their existing labels (--force realigns them)" in capsys.readouterr().err
    assert main(argv + ["--force"]) == 0
    assert (audio_dir / f"{clip}.phones.lab").read_text() != corrected
    assert (audio_dir / f"{clip}.words.lab").exists()
