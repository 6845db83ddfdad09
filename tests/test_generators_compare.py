"""`python -m training compare`: trains, evaluates and measures the generator families on a SYNTHETIC ci corpus,
reuses finished runs and refuses bad arguments."""

import csv
import json

import numpy as np
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


# --- the paper's comparison of exported models (issue 18 item 4) -------------------------------------------------
@pytest.fixture(scope="module")
def real_speech_corpus(tmp_path_factory):
    """benchmarks/real_speech_corpus.py's corpus of set (b), the 9 labelled unseen-speaker clips."""
    import importlib.util

    from conftest import REPO, SHARED
    if not (SHARED / "speech" / "dev").is_dir() or not (SHARED / "flame" / "FLAME_masks.npz").is_file():
        pytest.skip(f"{SHARED}: the speech/dev clips and FLAME assets live in ../shared (not in the repo)")
    spec = importlib.util.spec_from_file_location("real_speech_corpus", REPO / "benchmarks" / "real_speech_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("real_speech_corpus")
    assert module.main(["--out", str(out), "--sets", "b"]) == 0
    return out


def test_real_speech_corpus_decodes_to_the_benchmark_reference(real_speech_corpus, flame_mesh, flame_masks):
    """The corpus's ground truth is exactly the benchmark's pseudo ground truth: the rig from the labels."""
    from backend.datasets import open_dataset
    from backend.flame import FlameRegions
    from backend.heldout import dev_utterances
    from backend.metrics.phone_checks import rig_from_labels
    from backend.rig.flame_rig import FlameRig
    from conftest import SHARED

    manifest = json.loads((real_speech_corpus / "manifest.json").read_text())
    assert manifest["evaluation_only"] and manifest["synthetic"]
    dataset = open_dataset(real_speech_corpus, split="b")
    assert dataset.split_names() == ("b",) and len(dataset.clip_ids()) == 9
    rig = FlameRig(flame_mesh.vertices, flame_mesh.faces, FlameRegions.load(flame_masks).masks)
    utterances = {utterance.name: utterance for utterance in dev_utterances(SHARED)}
    assert {dataset.load(f"b_{name}").subject for name in utterances if name.startswith("cmu_arctic_us_aew")} == \
        {"dev_aew"}
    utterance = next(iter(utterances.values()))
    clip = dataset.load(f"b_{utterance.name}")
    assert clip.subject == f"dev_{utterance.name}" and clip.timeline == utterance.timeline
    expected = rig_from_labels(rig, utterance.timeline, len(clip.vertices))
    assert np.abs(clip.vertices - expected).max() < 1e-6
    assert np.abs(clip.audio - utterance.audio).max() < 1e-4        # PCM16


@pytest.fixture(scope="module")
def exported_models(ci_corpus, representation_dir, tmp_path_factory):
    """faceformer_v2 and faceformer_v2_perceptual exported from tiny runs (the second with the tiny critic)."""
    models = tmp_path_factory.mktemp("models")
    runs = tmp_path_factory.mktemp("runs")
    for name, extra in (("faceformer_v2", []), ("faceformer_v2_perceptual", [
            "--perceptual-weight", "1e-7", "--representation", str(representation_dir / "two-stage.pt")])):
        assert training_main(["train", *TINY, "--family", "faceformer", "--corpus", str(ci_corpus),
                              "--out", str(runs / name), *extra]) == 0
        assert training_main(["export-generator", "--checkpoint", str(runs / name / "checkpoint.pt"),
                              "--out", str(models / name)]) == 0
    return models, runs


def test_compare_exported_scores_tables_closure_direction_and_cost(ci_corpus, exported_models, real_speech_corpus,
                                                                   representation_dir, flame_masks, tmp_path):
    models, runs = exported_models
    out = tmp_path / "out"
    assert training_main(["compare", "--exported", str(models), "--corpus", str(ci_corpus), "--masks",
                          str(flame_masks), "--real-speech", str(real_speech_corpus), "--real-sets", "b", "--runs",
                          str(runs), "--critic", str(representation_dir / "two-stage.pt"), "--families",
                          "faceformer", "--parts", "comparison", "cost", "--cost-steps", "1", "--cost-clips", "3",
                          "--out", str(out)]) == 0
    text = (out / "comparison.md").read_text()
    assert "independent evaluator" in text and "plrs_evaluator" in text
    assert "## Table 2 format on corpus" in text and "## Table 2 format on real-speech set b: unseen real speakers" in text
    assert "measured against the rig driven by the clip's phone labels" in text
    assert text.count("| FaceFormer-style | ✓ |") == 2 and "n/a | n/a | n/a" not in text
    checks = json.loads((out / "phone_checks.json").read_text())
    assert checks["b"]["ground truth"]["closure"] == 1.0 and checks["b"]["ground truth"]["mtm_median_ms"] == 0.0
    assert checks["b"]["FaceFormer-style + perceptual"]["clips"] == 9
    direction = json.loads((out / "direction.json").read_text())["faceformer"]
    assert direction["closure_sets"] == ["b"] and set(direction) >= {"closure", "MTM", "PLRS", "LVE", "holds"}
    base, loss, passed = direction["LVE"]
    assert passed == (loss <= 1.05 * base)
    assert "The claim holds for" in text
    with open(out / "cost.csv", newline="") as stream:
        cost = list(csv.DictReader(stream))
    assert [(row["family"], row["perceptual"], float(row["perceptual_weight"])) for row in cost] == [
        ("faceformer", "False", 0.0), ("faceformer", "True", 1e-7)]
    assert all(float(row["seconds_per_iteration"]) > 0 for row in cost)
    assert "split `test` (evaluated), b: unseen real speakers (evaluated)" in text
    assert training_main(["compare", "--exported", str(models), "--corpus", str(ci_corpus), "--masks",
                          str(flame_masks), "--real-speech", str(real_speech_corpus), "--real-sets", "b",
                          "--families", "faceformer", "--parts", "comparison", "--out", str(out)]) == 0
    assert "split `test` (reused), b: unseen real speakers (reused)" in (out / "comparison.md").read_text()


def test_compare_exported_cost_measures_codetalker_on_a_stage_1_refitted_on_the_cost_clips(
        ci_corpus, codetalker_runs, representation_dir, tmp_path, capsys):
    """The stage 1 was fitted on the whole train split, so stage 2 refuses it on the cost clips (another motion
    basis); the cost part refits the stage-1 run's own configuration on those clips and measures both rows."""
    import shutil

    from training.generators.config import GeneratorConfig
    from training.generators.export import export_generator
    from training.generators.families import load_generator_checkpoint
    models = tmp_path / "models"
    export_generator(codetalker_runs / "stage2" / "checkpoint.pt", models / "codetalker_v2")
    shutil.copytree(models / "codetalker_v2", models / "codetalker_v2_perceptual")   # the + loss row's config:
    info = json.loads((models / "codetalker_v2_perceptual" / "model.json").read_text())   # only the weight differs
    info["config"]["perceptual_weight"] = 1e-7
    (models / "codetalker_v2_perceptual" / "model.json").write_text(json.dumps(info))
    out = tmp_path / "out"
    assert training_main(["compare", "--exported", str(models), "--corpus", str(ci_corpus), "--runs",
                          str(codetalker_runs), "--critic", str(representation_dir / "two-stage.pt"), "--families",
                          "codetalker", "--parts", "cost", "--cost-steps", "1", "--cost-clips", "3", "--out",
                          str(out)]) == 0
    assert "not measured" not in capsys.readouterr().out
    with open(out / "cost.csv", newline="") as stream:
        cost = list(csv.DictReader(stream))
    assert [(row["family"], row["perceptual"]) for row in cost] == [("codetalker", "False"), ("codetalker", "True")]
    assert all(float(row["seconds_per_iteration"]) > 0 for row in cost)
    text = (out / "comparison.md").read_text()
    assert "| CodeTalker-style |" in text and "the stage-1 prior of codetalker refitted on those clips" in text
    (refit,) = (out / "cost_runs").glob("*/vq/checkpoint.pt")

    def config_of(path):
        return GeneratorConfig.from_dict(json.loads(load_generator_checkpoint(path)["config"]))
    assert config_of(refit) == config_of(codetalker_runs / "vq" / "checkpoint.pt")   # its settings (4 < 20 steps)
    fitted = load_generator_checkpoint(codetalker_runs / "vq" / "checkpoint.pt")["model"]["basis.components"]
    assert not torch.allclose(load_generator_checkpoint(refit)["model"]["basis.components"], fitted)   # 3 clips'


def test_compare_exported_refuses_the_critic_as_plrs_evaluator(exported_models, ci_corpus, tmp_path, capsys):
    from backend.models import SPEECH_MESH, default_models_dir
    models, _ = exported_models
    assert training_main(["compare", "--exported", str(models), "--corpus", str(ci_corpus), "--encoders",
                          str(default_models_dir(SPEECH_MESH)), "--out", str(tmp_path / "out")]) == 2
    assert "holds the critic the perceptual loss was trained with" in capsys.readouterr().err


def test_compare_exported_needs_exported_folders_and_compare_needs_runs(ci_corpus, tmp_path, capsys):
    assert training_main(["compare", "--exported", str(tmp_path), "--corpus", str(ci_corpus),
                          "--out", str(tmp_path / "out")]) == 2
    assert "no exported folder <family>_v2[_perceptual]" in capsys.readouterr().err
    assert training_main(["compare", "--corpus", str(ci_corpus), "--out", str(tmp_path / "out")]) == 2
    assert "compare needs --runs and --representation" in capsys.readouterr().err


def test_compare_exported_ablation_repeats_the_perceptual_run_with_each_other_critic(
        ci_corpus, exported_models, representation_dir, flame_masks, tmp_path, capsys):
    """Table 3 on exported models: the exported + perceptual run is repeated with only the critic changed (a missing
    critic trained with the shipped critic's settings), every row scored by the independent evaluator, then reused."""
    import shutil

    from training.checkpoints import save_checkpoint
    from training.generators.config import GeneratorConfig
    from training.generators.families import load_generator_checkpoint
    from training.representation.train import load_representation_checkpoint, load_representation_meta
    models, runs = exported_models
    critics, out = tmp_path / "critics", tmp_path / "out"
    critics.mkdir()
    shutil.copy(representation_dir / "syncnet.pt", critics / "syncnet.pt")    # no-2d-prior.pt is missing: trained
    critic = load_representation_checkpoint(representation_dir / "two-stage.pt")
    meta = json.loads(critic["meta"])
    meta["config"]["stage2"]["steps"], meta["config"]["seed"], meta["config"]["data_half"] = 3, 2, 0
    save_checkpoint(tmp_path / "critic.pt", {**critic, "meta": json.dumps(meta)})   # settings to carry over
    arguments = ["compare", "--exported", str(models), "--corpus", str(ci_corpus), "--masks", str(flame_masks),
                 "--runs", str(runs), "--critic", str(tmp_path / "critic.pt"), "--representation",
                 str(critics), "--families", "faceformer", "--parts", "ablation", "--out", str(out)]
    assert training_main(arguments) == 0
    trained = load_representation_meta(critics / "no-2d-prior.pt")
    assert trained["variant"] == "no-2d-prior" and trained["config"] == meta["config"]

    def config_of(run):
        return GeneratorConfig.from_dict(json.loads(load_generator_checkpoint(run / "checkpoint.pt")["config"]))
    shipped = runs / "faceformer_v2_perceptual"
    perceptual = [float(row["perceptual"]) for row in read_log(shipped / "loss.csv")]
    for variant in ("syncnet", "no-2d-prior"):
        run = out / "ablation" / "runs" / f"faceformer_{variant}"
        assert config_of(run) == config_of(shipped)
        other = [float(row["perceptual"]) for row in read_log(run / "loss.csv")]
        assert all(value > 0 for value in other) and other != perceptual      # another critic's loss
        assert (out / "ablation" / "models" / f"faceformer_v2_perceptual_{variant}" / "generator.onnx").is_file()
    text = (out / "comparison.md").read_text()
    assert "## Representation ablation (paper Table 3 format)" in text and "plrs_evaluator" in text
    table3 = text.split("### Table 3 format on corpus")[1].split("###")[0]
    lines = [line for line in table3.splitlines() if line.startswith("| FaceFormer-style |")]
    assert [line.split(" | ")[1] for line in lines] == [
        "no perceptual loss", "loss from 3D SyncNet-style", "loss from w/o 2D prior",
        "loss from ours (two-stage, 2D prior) (the + perceptual model)"]
    assert not any("n/a | n/a | n/a" in line for line in lines)
    closure = text.split("### Bilabial closure")[1]
    assert "| FaceFormer-style + perceptual (ours (two-stage, 2D prior)) |" in closure    # the critic named
    assert "| FaceFormer-style + perceptual (3D SyncNet-style) |" in closure
    ablation = json.loads((out / "ablation.json").read_text())
    assert ablation["critic_variant"] == "two-stage" and len(ablation["rows"]["test"]) == 5     # + ground truth
    predictions = list(out.glob("evaluation_test/*/predictions/*/*.npy"))   # ~33 MB a row; reuse reads the tables
    assert len(predictions) == 5 * 6
    for prediction in predictions:
        prediction.unlink()
    capsys.readouterr()
    assert training_main(arguments) == 0
    output = capsys.readouterr().out
    assert "training " not in output and "evaluated " not in output       # runs, exports and rows all reused


def test_compare_exported_ablation_needs_runs_and_a_critics_folder(exported_models, ci_corpus, tmp_path, capsys):
    models, _ = exported_models
    assert training_main(["compare", "--exported", str(models), "--corpus", str(ci_corpus), "--parts", "ablation",
                          "--out", str(tmp_path / "out")]) == 2
    assert "the ablation part fine-tunes as the exported runs were made: it needs --runs" in capsys.readouterr().err
