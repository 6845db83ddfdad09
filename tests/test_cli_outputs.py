"""Issue 16 item 7: the command lines write through the one atomic writer.

A folder, a read-only folder or a write-protected file as `score --json/--csv` or `animate --out` is a one-line
error before any work; a full disk never truncates the previous results; a new .npy gets the umask's mode.
"""

import errno
import json
import os

import numpy as np
import pytest
import soundfile

from backend import atomic
from backend.cli import main
from onnx_test_models import tone
from synthetic_talking import envelope_audio, speech_like_envelope, talking_sequence

RATE = 16000


@pytest.fixture
def one_clip(flame_and_regions, flame_masks, tmp_path, monkeypatch):
    """Score arguments for one SYNTHETIC 100-frame clip (no encoder models, so no PLRS)."""
    monkeypatch.setattr("backend.metrics.plrs.default_models_dir", lambda *name: tmp_path / "no-models")
    template, regions = flame_and_regions
    envelope = speech_like_envelope(100, seed=1)
    soundfile.write(tmp_path / "a.wav", envelope_audio(envelope, RATE, seed=1), RATE, subtype="PCM_16")
    np.save(tmp_path / "pred.npy", talking_sequence(template, regions.lips, envelope).astype(np.float32))
    return ["score", "--pred", str(tmp_path / "pred.npy"), "--audio", str(tmp_path / "a.wav"),
            "--masks", str(flame_masks)]


def one_line_error(code, capsys, message):
    captured = capsys.readouterr()
    assert code == 2 and "Traceback" not in captured.err
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], captured.err


@pytest.mark.parametrize("flag", ["--json", "--csv"])
def test_score_output_that_is_a_folder(one_clip, tmp_path, capsys, flag):
    (tmp_path / "results").mkdir()
    one_line_error(main(one_clip + [flag, str(tmp_path / "results")]), capsys, "it is a folder")


@pytest.mark.parametrize("flag", ["--json", "--csv"])
def test_score_output_in_a_read_only_folder(one_clip, tmp_path, capsys, flag):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        one_line_error(main(one_clip + [flag, str(locked / "scores")]), capsys, "is read-only")
    finally:
        locked.chmod(0o755)
    assert list(locked.iterdir()) == []


@pytest.mark.parametrize("flag", ["--json", "--csv"])
def test_score_output_in_a_missing_folder(one_clip, tmp_path, capsys, flag):
    one_line_error(main(one_clip + [flag, str(tmp_path / "nowhere" / "scores")]), capsys, "does not exist")


@pytest.mark.parametrize("flag", ["--json", "--csv"])
def test_score_keeps_a_write_protected_result(one_clip, tmp_path, capsys, flag):
    previous = tmp_path / "scores"
    previous.write_text("last week's results")
    previous.chmod(0o444)
    one_line_error(main(one_clip + [flag, str(previous)]), capsys, "write-protected")
    assert previous.read_text() == "last week's results"


def test_score_on_a_full_disk_keeps_the_previous_results(one_clip, tmp_path, capsys, monkeypatch):
    assert main(one_clip + ["--json", str(tmp_path / "scores.json"), "--csv", str(tmp_path / "scores.csv")]) == 0
    before = {name: (tmp_path / name).read_bytes() for name in ("scores.json", "scores.csv")}
    capsys.readouterr()

    def full_disk(handle):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(atomic.os, "fsync", full_disk)
    for flag, name in (("--json", "scores.json"), ("--csv", "scores.csv")):
        one_line_error(main(one_clip + [flag, str(tmp_path / name)]), capsys, "No space left on device")
    monkeypatch.undo()
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert json.loads(before["scores.json"])["summary"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.fixture
def animate_args(models_dir, flame_ply, tmp_path):
    audio = tmp_path / "speech.wav"
    soundfile.write(audio, tone(1.0, 16000), 16000, subtype="PCM_16")
    return ["animate", "--audio", str(audio), "--template", str(flame_ply), "--model", "offset",
            "--models-dir", str(models_dir)]


def test_animate_out_refusals(animate_args, tmp_path, capsys):
    (tmp_path / "folder.npy").mkdir()
    one_line_error(main(animate_args + ["--out", str(tmp_path / "folder.npy")]), capsys, "it is a folder")
    protected = tmp_path / "take1.npy"
    np.save(protected, np.zeros((2, 5023, 3), np.float32))
    protected.chmod(0o444)
    one_line_error(main(animate_args + ["--out", str(protected)]), capsys, "write-protected")
    assert np.load(protected).shape == (2, 5023, 3)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        one_line_error(main(animate_args + ["--out", str(locked / "seq.npy")]), capsys, "is read-only")
    finally:
        locked.chmod(0o755)


def test_animate_writes_the_npy_with_the_umask_mode(animate_args, tmp_path, capsys):
    previous = os.umask(0o002)
    try:
        assert main(animate_args + ["--out", str(tmp_path / "seq.npy")]) == 0
    finally:
        os.umask(previous)
    assert (tmp_path / "seq.npy").stat().st_mode & 0o777 == 0o664
