"""Generators II: CodeTalker-style (VQ prior + code predictor) and SelfTalk-style (lip-reading consistency)
families, their tiny presets end to end on a SYNTHETIC ci ci_corpus, export, and the comparison command."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.errors import BackendError, ModelError
from backend.flame import LOWER_LIP_CENTRE, UPPER_LIP_CENTRE
from backend.generators import load_generator
from backend.mesh import load_flame_mesh
from training.__main__ import main as training_main
from training.generators.codetalker import VectorQuantiser
from training.generators.compare import code_usage
from training.generators.config import generator_preset
from training.generators.export import export_generator, speech_like_audio
from training.generators.families import build_generator, load_generator_checkpoint
from training.generators.selftalk import LIP_VERTICES, PHONEMES, lip_region, phoneme_labels
from training.generators.train import load_clips, training_styles

TINY = ["--preset", "tiny", "--set", "steps=4", "--set", "log_every=1", "--set", "checkpoint_every=2"]






@pytest.fixture(scope="session")
def codetalker_runs(tmp_path_factory, ci_corpus):
    """Tiny stage 1 (VQ autoencoder) and stage 2 (code predictor on the frozen prior) runs."""
    root = tmp_path_factory.mktemp("codetalker")
    torch.set_num_threads(1)
    assert training_main(["train", *TINY, "--family", "codetalker-vq", "--corpus", str(ci_corpus),
                          "--out", str(root / "vq")]) == 0
    assert training_main(["train", *TINY, "--family", "codetalker", "--set",
                          f"codetalker.motion_prior={root / 'vq' / 'checkpoint.pt'}", "--corpus", str(ci_corpus),
                          "--out", str(root / "stage2")]) == 0
    return root


@pytest.fixture(scope="session")
def selftalk_run(tmp_path_factory, ci_corpus):
    out = tmp_path_factory.mktemp("selftalk")
    torch.set_num_threads(1)
    assert training_main(["train", *TINY, "--family", "selftalk", "--corpus", str(ci_corpus), "--out", str(out)]) == 0
    return out


def logged_rows(out: Path) -> list:
    with open(out / "loss.csv", newline="") as stream:
        return list(csv.DictReader(stream))


# --- CodeTalker-style ----------------------------------------------------------------------------------

def test_quantiser_picks_the_nearest_code_and_passes_gradients_straight_through():
    quantiser = VectorQuantiser(width=4, groups=2, size=3)
    with torch.no_grad():
        quantiser.codebook.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [-2.0, 0.0]]))
    latent = torch.tensor([[[0.9, 1.2, -1.5, 0.2]]], requires_grad=True)
    straight, indices, quantised = quantiser(latent)
    assert indices.tolist() == [[[1, 2]]]
    assert torch.equal(quantised, torch.tensor([[[1.0, 1.0, -2.0, 0.0]]]))
    assert torch.equal(straight, quantised)
    (straight * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert latent.grad.tolist() == [[[1.0, 2.0, 3.0, 4.0]]]


def test_code_usage_perplexity_and_dead_codes():
    assert code_usage(torch.tensor([0, 0, 1, 1]), 4) == {"perplexity": pytest.approx(2.0), "used": 2, "dead": 2,
                                                         "codebook_size": 4, "codes": 4}
    assert code_usage(torch.tensor([[3, 3], [3, 3]]), 5)["perplexity"] == pytest.approx(1.0)


def test_tiny_codetalker_trains_both_stages_with_a_frozen_prior(codetalker_runs):
    vq, stage2 = load_generator_checkpoint(codetalker_runs / "vq" / "checkpoint.pt"), \
        load_generator_checkpoint(codetalker_runs / "stage2" / "checkpoint.pt")
    assert json.loads(vq["config"])["family"] == "codetalker-vq" and stage2["step"] == 4
    for out, term, weight in (("vq", "vq", 1.0), ("stage2", "code", 0.1)):  # code_weight 0.1 (codetalker section)
        rows = logged_rows(codetalker_runs / out)
        assert len(rows) == 4 and all(float(row[term]) > 0 for row in rows)
        assert all(float(row["loss"]) == pytest.approx(float(row["mse"]) + weight * float(row[term]), rel=1e-4)
                   for row in rows)
    prior = {name[len("prior."):]: value for name, value in stage2["model"].items() if name.startswith("prior.")}
    assert prior.keys() == vq["model"].keys()
    assert all(torch.equal(value, vq["model"][name]) for name, value in prior.items())


def test_codebook_starts_from_encoder_outputs(ci_corpus):
    config = generator_preset("tiny", family="codetalker-vq")
    styles = training_styles(ci_corpus)
    clips = load_clips(ci_corpus, "train", styles, config)
    torch.manual_seed(0)
    model = build_generator(config, len(styles))
    model.prepare_training(clips)
    with torch.no_grad():
        latent = model.encode(clips[0].vertices[None], clips[0].template[None])
        usage = code_usage(model.quantiser.indices(latent), config.codetalker.codebook_size)
    assert usage["used"] > 8  # a uniform +-1/K initialisation maps every frame to one or two codes


def test_codetalker_export_meets_the_contract(codetalker_runs, flame_ply, tmp_path):
    folder, error = export_generator(codetalker_runs / "stage2" / "checkpoint.pt", tmp_path / "codetalker_tiny")
    assert error <= 1e-4
    generator = load_generator(folder)
    assert generator.info.family == "codetalker"
    template = load_flame_mesh(flame_ply).vertices
    vertices = generator.animate(speech_like_audio(1.0, 3)[0], 16000, template)
    assert vertices.shape == (30, 5023, 3) and np.isfinite(vertices).all()


def test_codetalker_needs_a_matching_stage_one_prior(codetalker_runs, ci_corpus, tmp_path):
    styles = training_styles(ci_corpus)
    clips = load_clips(ci_corpus, "train", styles, generator_preset("tiny"))[:2]
    missing = build_generator(generator_preset("tiny", family="codetalker"), 3)
    with pytest.raises(ModelError, match="needs its stage-1 motion prior: train family 'codetalker-vq' first"):
        missing.prepare_training(clips)
    wrong_family = build_generator(generator_preset("tiny", family="codetalker", codetalker={
        "motion_prior": str(codetalker_runs / "stage2" / "checkpoint.pt")}), 3)
    with pytest.raises(ModelError, match="motion_prior is a 'codetalker' checkpoint; expected a 'codetalker-vq'"):
        wrong_family.prepare_training(clips)
    other_size = build_generator(generator_preset("tiny", family="codetalker", codetalker={
        "codebook_size": 32, "motion_prior": str(codetalker_runs / "vq" / "checkpoint.pt")}), 3)
    with pytest.raises(ModelError, match=r"other sizes \(codebook_size 256 vs 32\)"):
        other_size.prepare_training(clips)
    absent = build_generator(generator_preset("tiny", family="codetalker",
                                              codetalker={"motion_prior": str(tmp_path / "x.pt")}), 3)
    with pytest.raises(ModelError, match="checkpoint not found"):
        absent.prepare_training(clips)


def test_the_motion_autoencoder_cannot_animate_audio():
    model = build_generator(generator_preset("tiny", family="codetalker-vq"), 2)
    with pytest.raises(ModelError, match="stage-1 motion autoencoder: it needs ground-truth motion"):
        model(torch.zeros(1, 16000), torch.zeros(1, 5023, 3), torch.eye(2)[:1])


def test_code_groups_must_divide_the_width():
    with pytest.raises(BackendError, match="width 16 is not a multiple of codetalker.code_groups 3"):
        generator_preset("tiny", family="codetalker-vq", codetalker={"code_groups": 3})


# --- SelfTalk-style ------------------------------------------------------------------------------------

def test_phoneme_labels_drop_silences_merge_repeats_and_strip_stress():
    timeline = [(0.0, 0.1, "SIL"), (0.1, 0.2, "HH"), (0.2, 0.3, "ah1"), (0.3, 0.4, "AH"), (0.4, 0.5, "SIL"),
                (0.5, 0.6, "AH0")]
    assert phoneme_labels(timeline).tolist() == [PHONEMES.index("HH") + 1, PHONEMES.index("AH") + 1,
                                                 PHONEMES.index("AH") + 1]
    with pytest.raises(BackendError, match="phoneme 'Q' in a timeline is not ARPAbet; expected one of AA, AE"):
        phoneme_labels([(0.0, 0.1, "Q")])


def test_lip_region_surrounds_the_lip_centres(flame_ply):
    template = torch.from_numpy(load_flame_mesh(flame_ply).vertices)
    region = lip_region(template)
    assert len(region) == LIP_VERTICES == len(set(region.tolist()))
    assert {UPPER_LIP_CENTRE, LOWER_LIP_CENTRE} <= set(region.tolist())


def test_tiny_selftalk_trains_and_exports(selftalk_run, ci_corpus, flame_ply, tmp_path):
    rows = logged_rows(selftalk_run)
    assert len(rows) == 4 and all(float(row["phoneme"]) > 0 for row in rows)
    checkpoint = load_generator_checkpoint(selftalk_run / "checkpoint.pt")
    template = load_clips(ci_corpus, "train", training_styles(ci_corpus), generator_preset("tiny"))[0].template
    assert torch.equal(checkpoint["model"]["lip_indices"], lip_region(template))
    folder, error = export_generator(selftalk_run / "checkpoint.pt", tmp_path / "selftalk_tiny")
    assert error <= 1e-4 and load_generator(folder).info.family == "selftalk"


def test_generated_lips_train_the_generator_not_the_lip_reader(ci_corpus):
    config = generator_preset("tiny", family="selftalk")
    styles = training_styles(ci_corpus)
    clip = load_clips(ci_corpus, "train", styles, config)[0]
    torch.manual_seed(0)
    model = build_generator(config, len(styles))
    with torch.no_grad():
        model.head.linear.weight.normal_(std=1e-4)  # a trained head: the lips move
    output = model.training_output(clip)
    terms = output.details
    assert set(output.losses) == {"phoneme"}
    assert set(terms) == {"recogniser_ctc", "lip_reader_ctc", "generated_ctc", "consistency"}
    assert all(float(value) > 0 for value in terms.values())
    (terms["generated_ctc"] + terms["consistency"]).backward()
    assert all(parameter.grad is None for parameter in model.lip_reader.parameters())
    assert all(parameter.grad is None for parameter in model.recogniser.parameters())
    assert model.head.linear.weight.grad.abs().sum() > 0


def test_selftalk_needs_phoneme_timelines(ci_corpus, tmp_path):
    copy = tmp_path / "corpus"
    shutil.copytree(ci_corpus, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["clips"][0]["timeline"] = []
    (copy / "manifest.json").write_text(json.dumps(manifest))
    first = manifest["clips"][0]["id"]
    with pytest.raises(BackendError, match=f"clip {first} has no phoneme timeline; the SelfTalk-style family"):
        load_clips(copy, "train", training_styles(copy), generator_preset("tiny", family="selftalk"))


# --- The comparison command ----------------------------------------------------------------------------

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
    perceptual = logged_rows(tmp_path / "runs" / "selftalk_perceptual")
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
