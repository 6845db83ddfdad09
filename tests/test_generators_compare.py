"""`python -m training compare`: trains, evaluates and measures the generator families on a SYNTHETIC ci corpus,
reuses finished runs and refuses bad arguments."""

import csv
import json

import pytest
import torch

from tiny_runs import TINY
from training.__main__ import main as training_main
from training.loop import read_log

pytestmark = pytest.mark.training


@pytest.fixture(scope="session")
def representation_dir(tmp_path_factory):
    """The three representation variants in `python -m training represent`'s format (random tiny encoders)."""
    from training.checkpoints import save_checkpoint
    from training.representation.config import preset
    from training.representation.model import build_encoders

    folder = tmp_path_factory.mktemp("representation")
    config = preset("tiny")
    for variant in ("two-stage", "syncnet", "no-2d-prior"):
        torch.manual_seed(0)
        speech_encoder, mesh_encoder = build_encoders(variant, config.model)
        save_checkpoint(folder / f"{variant}.pt", {"meta": json.dumps({"variant": variant, "config": config.to_dict()}),
                                                   "speech_encoder": speech_encoder.state_dict(),
                                                   "mesh_encoder": mesh_encoder.state_dict()})
    return folder


def test_compare_trains_evaluates_measures_and_then_reuses(ci_corpus, representation_dir, flame_masks, tmp_path,
                                                           capsys):
    arguments = ["compare", "--corpus", str(ci_corpus), "--masks", str(flame_masks), "--runs", str(tmp_path / "runs"),
                 "--representation", str(representation_dir), "--out", str(tmp_path / "out"), "--preset", "tiny", "--families", "selftalk",
                 "--parts", "comparison", "cost", "--cost-steps", "1"]
    assert training_main(arguments) == 0
    text = (tmp_path / "out" / "comparison.md").read_text()
    assert "SYNTHETIC corpus" in text and "`selftalk_base` (trained)" in text
    assert "| SelfTalk-style | ✗ |" in text and "| SelfTalk-style | ✓ |" in text
    with open(tmp_path / "out" / "cost.csv", newline="") as stream:
        cost = list(csv.DictReader(stream))
    assert [(row["family"], row["perceptual"]) for row in cost] == [("selftalk", "False"), ("selftalk", "True")]
    assert all(float(row["seconds_per_iteration"]) > 0 and float(row["peak_memory_mb"]) >= 0 for row in cost)
    perceptual = read_log(tmp_path / "runs" / "selftalk_perceptual" / "loss.csv")
    assert all(float(row["perceptual"]) > 0 for row in perceptual)
    capsys.readouterr()
    assert training_main([*arguments[:-4], "comparison"]) == 0
    assert "`selftalk_base` (reused), `selftalk_perceptual` (reused)" in capsys.readouterr().out


def test_compare_refuses_runs_trained_otherwise(ci_corpus, representation_dir, tmp_path, capsys):
    assert training_main(["train", *TINY, "--family", "selftalk", "--set", "seed=3", "--corpus", str(ci_corpus),
                          "--out", str(tmp_path / "runs" / "selftalk_base")]) == 0
    assert training_main(["compare", "--corpus", str(ci_corpus), "--runs", str(tmp_path / "runs"), "--representation",
                          str(representation_dir), "--out", str(tmp_path / "out"), "--preset", "tiny",
                          "--families", "selftalk", "--parts", "comparison"]) == 2
    assert "selftalk_base/checkpoint.pt was trained with other settings (steps, log_every, checkpoint_every, seed)" \
        in capsys.readouterr().err


@pytest.mark.parametrize("families, parts, message", [
    (["wav2lip"], ["comparison"], "unknown famil(ies) or part(s) wav2lip; families: faceformer, kmtalk, codetalker"),
    (["selftalk"], ["tables"], "unknown famil(ies) or part(s) tables; families:"),
    (["selftalk"], ["ablation"], "the ablation part trains FaceFormer-style models; add faceformer to --families"),
])
def test_compare_bad_arguments(ci_corpus, representation_dir, tmp_path, capsys, families, parts, message):
    assert training_main(["compare", "--corpus", str(ci_corpus), "--runs", str(tmp_path / "runs"), "--representation",
                          str(representation_dir), "--out", str(tmp_path / "out"), "--families", *families,
                          "--parts", *parts]) == 2
    assert message in capsys.readouterr().err
