"""The CodeTalker-style family (VQ motion prior + code predictor): quantiser, code usage, both tiny stages
end to end on a SYNTHETIC ci corpus, export and the errors."""

import json

import numpy as np
import pytest
import torch

from backend.errors import BackendError, ModelError
from backend.generators import load_generator
from backend.mesh import load_flame_mesh
from training.loop import read_log
from training.generators.codetalker import VectorQuantiser
from training.generators.compare import code_usage
from training.generators.config import generator_preset
from training.generators.export import export_generator, speech_like_audio
from training.generators.families import build_generator, load_generator_checkpoint
from training.generators.clips import ClipLoader, training_styles

pytestmark = pytest.mark.training



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
        rows = read_log(codetalker_runs / out / "loss.csv")
        assert len(rows) == 4 and all(float(row[term]) > 0 for row in rows)
        gap_weight = generator_preset("tiny").lip_gap_weight
        assert all(float(row["loss"]) == pytest.approx(float(row["mse"]) + gap_weight * float(row["lip_gap"])
                                                       + weight * float(row[term]), rel=1e-4) for row in rows)
    prior = {name[len("prior."):]: value for name, value in stage2["model"].items() if name.startswith("prior.")}
    assert prior.keys() == vq["model"].keys()
    assert all(torch.equal(value, vq["model"][name]) for name, value in prior.items())


def fitted(config, corpus):
    """(model of `config` with the data statistics of the corpus's train split, its training clips)."""
    styles = training_styles(corpus)
    loader = ClipLoader(corpus, "train", styles, config)
    torch.manual_seed(0)
    model = build_generator(config, len(styles))
    model.set_statistics(loader.fit_statistics())
    return model, loader.clips(model.motion_basis)


def test_codebook_starts_from_encoder_outputs(ci_corpus):
    config = generator_preset("tiny", family="codetalker-vq")
    model, clips = fitted(config, ci_corpus)
    model.prepare_training(clips)
    with torch.no_grad():
        latent = model.encode(clips[0].coefficients[None])
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
    clips = fitted(generator_preset("tiny"), ci_corpus)[1][:2]
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
        model(torch.zeros(1, 30, 447), torch.zeros(1, 5023, 3), torch.eye(2)[:1])


def test_code_groups_must_divide_the_width():
    with pytest.raises(BackendError, match="width 16 is not a multiple of codetalker.code_groups 3"):
        generator_preset("tiny", family="codetalker-vq", codetalker={"code_groups": 3})
