"""Issue 18: the closure term (lips open where they must be shut) and the "+ perceptual" variant (fine-tuned from a
baseline checkpoint with the perceptual loss, exported with a card that compares it with its baseline), on the
SYNTHETIC ci corpus."""

import json

import numpy as np
import pytest
import torch

from backend.flame import LOWER_LIP_CENTRE, UPPER_LIP_CENTRE
from training.__main__ import main as training_main
from training.generators.clips import closure_mask
from training.generators.families import load_trained
from training.generators.train import closure_term
from training.loop import read_log

pytestmark = pytest.mark.training

TINY = ["--preset", "tiny", "--set", "steps=3", "--set", "log_every=1", "--set", "checkpoint_every=3"]
REST_M = 0.002


def template_with_rest_gap() -> torch.Tensor:
    template = torch.zeros(5023, 3)
    template[UPPER_LIP_CENTRE, 1] = REST_M
    return template


def test_closure_term_is_zero_when_the_lips_are_shut_on_bilabials_and_positive_when_open():
    template, margin_mm = template_with_rest_gap(), 0.5
    mask = torch.tensor([0.0, 1.0, 1.0, 0.0])
    shut = torch.tensor([0.010, REST_M, REST_M + 0.0004, 0.010])     # wide open only off the bilabials
    assert closure_term(shut, mask, template, margin_mm).item() == 0.0
    opened = torch.tensor([REST_M, REST_M + 0.0025, REST_M + 0.0015, REST_M], requires_grad=True)
    value = closure_term(opened, mask, template, margin_mm)
    assert value.item() == pytest.approx((2.0 ** 2 + 1.0 ** 2) / 2, rel=1e-4)   # mm^2 above rest + 0.5 mm
    value.backward()
    assert opened.grad[1] > 0 and opened.grad[2] > 0 and opened.grad[0] == 0 and opened.grad[3] == 0
    assert closure_term(opened.detach(), torch.zeros(4), template, margin_mm).item() == 0.0   # no bilabial frame


def test_closure_mask_keeps_the_bilabial_frames_where_the_target_is_shut():
    template = template_with_rest_gap().numpy()
    timeline = [(0.0, 0.1, "AA"), (0.1, 0.2, "M"), (0.2, 0.3, "B")]       # frames 0-2, 3-5, 6-8 at 30 fps
    gap = np.full(9, REST_M + 0.004, dtype=np.float32)
    gap[3:6] = REST_M + 0.0005           # /m/ shut; /b/ left open by the target: not a closure frame
    gap[0] = REST_M                      # shut on a vowel: not a bilabial
    assert closure_mask(timeline, gap, template).tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 0]
    assert closure_mask(None, gap, template).sum() == 0


def tiny_representation(path):
    from training.checkpoints import save_checkpoint
    from training.representation.config import preset
    from training.representation.model import build_encoders
    torch.manual_seed(0)
    config = preset("tiny")
    speech_encoder, mesh_encoder = build_encoders("two-stage", config.model)
    return save_checkpoint(path, {"meta": json.dumps({"variant": "two-stage", "config": config.to_dict()}),
                                  "speech_encoder": speech_encoder.state_dict(),
                                  "mesh_encoder": mesh_encoder.state_dict()})


def test_a_perceptual_variant_starts_from_its_baseline_and_its_card_compares_them(ci_corpus, tmp_path):
    baseline_run, tuned_run = tmp_path / "baseline", tmp_path / "tuned"
    assert training_main(["train", *TINY, "--set", "closure_weight=1", "--corpus", str(ci_corpus),
                          "--out", str(baseline_run)]) == 0
    assert "closure" in read_log(baseline_run / "loss.csv")[0]
    representation = tiny_representation(tmp_path / "two-stage.pt")
    baseline_checkpoint = baseline_run / "checkpoint.pt"
    assert training_main(["train", *TINY, "--set", "steps=1", "--set", "learning_rate=1e-12", "--set",
                          f"init_from={baseline_checkpoint}", "--corpus", str(ci_corpus), "--out", str(tuned_run),
                          "--perceptual-weight", "1e-7", "--representation", str(representation)]) == 0
    rows = read_log(tuned_run / "loss.csv")
    assert float(rows[0]["perceptual"]) > 0 and float(rows[0]["mse"]) > 0     # both terms logged
    before, _, _, _ = load_trained(baseline_checkpoint)
    after, config, _, _ = load_trained(tuned_run / "checkpoint.pt")
    assert config.init_from == str(baseline_checkpoint)
    for (name, old), new in zip(before.state_dict().items(), after.state_dict().values()):
        assert torch.allclose(old, new, atol=1e-6), f"{name} did not start from the baseline"

    base_dir, tuned_dir = tmp_path / "models" / "base", tmp_path / "models" / "base_perceptual"
    assert training_main(["export-generator", "--checkpoint", str(baseline_checkpoint), "--out", str(base_dir)]) == 0
    summary = {"closure": 0.8, "rest": 0.9, "mtm_median_ms": 30.0, "openness_rho": 0.6, "lag_frames": 0.1,
               "clips": 3}
    report = {"rows": [{"model": "base", "set": "b: unseen real speakers", "summary": summary},
                       {"model": "base_perceptual", "set": "b: unseen real speakers",
                        "summary": {**summary, "closure": 0.9, "mtm_median_ms": 35.0}}]}
    (tmp_path / "real_speech.json").write_text(json.dumps(report))
    (tmp_path / "plrs.json").write_text(json.dumps({"plrs": {"base": {"b": 0.25}, "base_perceptual": {"b": 0.31},
                                                             "other": {"b": 0.5}}}))
    assert training_main(["export-generator", "--checkpoint", str(tuned_run / "checkpoint.pt"), "--out",
                          str(tuned_dir), "--baseline", "base", "--benchmark", str(tmp_path / "real_speech.json"),
                          "--plrs", str(tmp_path / "plrs.json")]) == 0
    model = json.loads((tuned_dir / "model.json").read_text())
    assert model["fine_tuned_from"]["steps"] == 3 and model["baseline"] == "base"
    assert model["config"]["init_from"] == "baseline/checkpoint.pt"     # no local path in a shipped file
    card = (tuned_dir / "MODEL_CARD.md").read_text()
    assert "Fine-tuned from the baseline checkpoint `baseline/checkpoint.pt` (3 steps)" in card
    assert "perceptual loss of the speech-mesh representation × 1e-07" in card
    share = float(rows[0]["perceptual"]) / float(rows[0]["loss"])
    assert model["perceptual_share"] == pytest.approx(share) and f"was {100 * share:.0f} % of the logged loss" in card
    assert "closure 90 % vs 80 % (better)" in card and "MTM median 35 ms vs 30 ms (worse)" in card
    assert "Independent PLRS (`benchmarks/real_speech_plrs.py`, the PLRS evaluator): set b 0.310 vs 0.250." in card
    assert "rest 90 % vs 90 % (equal)" in card and "Better on 1, worse on 1 of 3 numbers" in card


def test_init_from_must_be_the_same_family(ci_corpus, tmp_path, capsys):
    assert training_main(["train", *TINY, "--family", "kmtalk", "--corpus", str(ci_corpus),
                          "--out", str(tmp_path / "km")]) == 0
    capsys.readouterr()
    assert training_main(["train", *TINY, "--set", f"init_from={tmp_path / 'km' / 'checkpoint.pt'}",
                          "--corpus", str(ci_corpus), "--out", str(tmp_path / "ff")]) == 2
    error = capsys.readouterr().err
    assert "init_from is a 'kmtalk' checkpoint; this run trains 'faceformer'" in error and "Traceback" not in error
    assert not (tmp_path / "ff" / "checkpoint.pt").exists()


def test_the_perceptual_target_from_cached_front_end_features_equals_the_one_from_audio():
    from backend.speech_frontend import load_frontend
    from training.generators.export import speech_like_audio
    from training.representation.losses import frontend_speech_features, speech_features
    audio = speech_like_audio(1.5, 0)[0]
    frames = 45
    stacked = load_frontend().features(audio, 16000).stacked()
    np.testing.assert_allclose(frontend_speech_features(stacked, frames), speech_features(audio, 16000, frames),
                               atol=1e-6)
