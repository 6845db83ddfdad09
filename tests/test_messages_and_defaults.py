"""Defaults and messages (issue 16 item 12), backend side: `animate` without --model uses DEFAULT_GENERATOR; a
broken generator folder is listed as broken and hides nothing; stereo whose channels cancel is named so; `info`
reads `.opus` and extension-less WAVs like `animate`; an unreadable file is a permission problem; scoring against
audio alone never speaks of a ground truth."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile

from backend.audio import SilentAudioError, load_audio
from backend.cli import main
from backend.errors import MetricError
from backend.generators import DEFAULT_GENERATOR, default_models_dir, scan_generators
from backend.metrics.evaluation import Regions, score_clip

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "sample_sentence.wav"


def _speech(seconds=1.0, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_animate_without_model_uses_the_default_generator(tmp_path, flame_ply, capsys):
    if not (default_models_dir() / DEFAULT_GENERATOR).is_dir():
        pytest.skip("the shipped generators are absent")
    out = tmp_path / "seq.npy"
    assert main(["animate", "--audio", str(SAMPLE), "--template", str(flame_ply), "--out", str(out)]) == 0
    assert f"from generator '{DEFAULT_GENERATOR}'" in capsys.readouterr().out and out.is_file()


def test_a_broken_generator_folder_is_listed_as_broken_and_hides_no_good_one(tmp_path, capsys):
    if not default_models_dir().is_dir():
        pytest.skip("the shipped generators are absent")
    shutil.copytree(default_models_dir() / DEFAULT_GENERATOR, tmp_path / DEFAULT_GENERATOR)
    (tmp_path / "aaa_broken").mkdir()
    (tmp_path / "aaa_broken" / "model.json").write_text("{ not json")
    (tmp_path / "no_graph").mkdir()
    (tmp_path / "no_graph" / "model.json").write_text(
        (default_models_dir() / DEFAULT_GENERATOR / "model.json").read_text().replace(DEFAULT_GENERATOR, "no_graph"))
    infos, broken = scan_generators(tmp_path)
    assert [info.name for info in infos] == [DEFAULT_GENERATOR]
    assert [name for name, _ in broken] == ["aaa_broken", "no_graph"]
    assert "not valid JSON" in broken[0][1] and "no generator.onnx" in broken[1][1]
    assert main(["animate", "--list", "--models-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{DEFAULT_GENERATOR} (default)\t")
    assert lines[1].startswith("aaa_broken\tBROKEN\t") and "not valid JSON" in lines[1]
    assert lines[2].startswith("no_graph\tBROKEN\t")


def test_stereo_whose_channels_cancel_is_not_called_silence(tmp_path):
    speech = _speech()
    soundfile.write(tmp_path / "phase.wav", np.stack([speech, -speech], axis=1), 16000)
    with pytest.raises(SilentAudioError) as error:
        load_audio(tmp_path / "phase.wav")
    message = str(error.value)
    assert "channels cancel" in message and "digital silence" not in message and "one channel" in message
    soundfile.write(tmp_path / "quiet.wav", np.zeros((16000, 2), np.float32), 16000)
    with pytest.raises(SilentAudioError, match="digital silence"):   # real silence keeps its name
        load_audio(tmp_path / "quiet.wav")


@pytest.mark.parametrize("name, format, subtype, rate", [("take.opus", "OGG", "OPUS", 48000),
                                                         ("take", "WAV", "PCM_16", 16000)])
def test_info_reads_what_animate_reads(tmp_path, capsys, name, format, subtype, rate):
    soundfile.write(tmp_path / name, _speech(1.0, rate), rate, format=format, subtype=subtype)
    load_audio(tmp_path / name)   # animate's reader accepts it
    assert main(["info", str(tmp_path / name), "--json"]) == 0
    description = json.loads(capsys.readouterr().out)
    assert description["kind"] == "audio" and description["format"] == format and description["sample_rate"] == rate


def test_info_still_says_what_it_describes_for_other_files(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["info", str(tmp_path / "notes.txt")]) == 2
    assert "unsupported file type '.txt'" in capsys.readouterr().err


def test_an_unreadable_audio_file_is_a_permission_problem_not_a_corrupt_file(flame_ply):
    """Root reads every file, so as root the commands run as `nobody` (setpriv)."""
    as_user = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot make a file unreadable")
        as_user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    folder = Path(tempfile.mkdtemp(prefix="th-permission-"))
    try:
        folder.chmod(0o777)
        audio = folder / "private.wav"
        shutil.copy(SAMPLE, audio)
        audio.chmod(0o000 if not as_user else 0o600)
        environment = dict(os.environ, PYTHONPATH=str(REPO))
        for command in (["info", str(audio)],
                        ["animate", "--audio", str(audio), "--template", str(flame_ply), "--out", str(folder / "x.npy")]):
            run = subprocess.run(as_user + [sys.executable, "-m", "backend", *command], capture_output=True,
                                 text=True, env=environment, cwd=folder, timeout=120)
            assert run.returncode == 2, run.stderr
            assert "permission denied" in run.stderr and "corrupt" not in run.stderr, run.stderr
    finally:
        shutil.rmtree(folder)


def test_scoring_against_audio_alone_does_not_mention_a_ground_truth():
    regions = Regions(lips=np.arange(10), upper_face=np.arange(10, 20))
    with pytest.raises(MetricError) as error:
        score_clip(np.zeros((300, 5023, 3), np.float32), _speech(1.0), 16000, regions)
    assert "ground" not in str(error.value) and "the audio spans 30 frames" in str(error.value)
