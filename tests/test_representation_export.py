"""ONNX export parity (random weights and inputs, within 1e-4), the PLRS contract of the exports, and
the shipped small models: contract, size, and an offset curve that peaks at 0 on held-out clips."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.errors import BackendError, ModelError
from backend.metrics.plrs import OnnxSpeechMeshEncoders
from backend.metrics.plrs import read_bands
from backend.models import PLRS_EVALUATOR, SPEECH_MESH, default_models_dir
from training.checkpoints import load_checkpoint, save_checkpoint
from training.representation.config import preset
from training.representation.export import PARITY_TOLERANCE, export_representation, parity_error, random_inputs
from training.representation.model import build_encoders





pytestmark = pytest.mark.training


def random_checkpoint(path: Path, variant: str, speech_input: str = "frontend", mesh_values: int = 0) -> Path:
    """A checkpoint in `represent`'s format with random weights and a plausible standardiser."""
    config = preset("tiny", model={"speech_input": speech_input, "mesh_values": mesh_values})
    torch.manual_seed(1)
    speech, mesh = build_encoders(variant, config.model)
    if hasattr(speech, "standardise"):
        speech.standardise.mean.normal_(-3.0, 1.0)
        speech.standardise.std.uniform_(0.5, 3.0)
    mesh.values.standardise.mean.normal_(0.0, 0.05)
    mesh.values.standardise.std.uniform_(1e-4, 3e-3)
    mesh.values.index.copy_(torch.randperm(15069)[:len(mesh.values.index)].sort().values)
    meta = {"variant": variant, "config": config.to_dict()}
    return save_checkpoint(path, {"meta": json.dumps(meta), "speech_encoder": speech.state_dict(),
                                  "mesh_encoder": mesh.state_dict()})


@pytest.mark.parametrize("variant, speech_input, mesh_values", [
    ("two-stage", "frontend", 0), ("syncnet", "frontend", 0), ("two-stage", "fbank", 0), ("two-stage", "frontend", 300),
    ("syncnet", "frontend", 300)])
def test_exported_encoders_match_torch_and_meet_the_plrs_contract(tmp_path, variant, speech_input, mesh_values):
    from training.representation.train import load_representation
    checkpoint = random_checkpoint(tmp_path / f"{variant}.pt", variant, speech_input, mesh_values)
    export_representation(checkpoint, tmp_path / "onnx")
    representation = load_representation(checkpoint)
    speech_encoder = representation.speech_encoder
    for batch in (1, 13):  # dynamic batch axis, other sizes than the export's 2
        speech, vertices = random_inputs(speech_encoder, representation.mesh_encoder, batch, seed=batch)
        assert parity_error(speech_encoder, tmp_path / "onnx" / "speech_encoder.onnx", speech_input,
                            speech) <= PARITY_TOLERANCE
        assert parity_error(representation.mesh_encoder, tmp_path / "onnx" / "mesh_encoder.onnx", "vertices",
                            vertices) <= PARITY_TOLERANCE
    encoders = OnnxSpeechMeshEncoders.from_directory(tmp_path / "onnx")
    assert encoders.speech_input == speech_input
    speech, vertices = random_inputs(speech_encoder, representation.mesh_encoder, 3)
    assert encoders.embed_speech(speech.numpy()).shape == (3, encoders.embed_mesh(vertices.numpy()).shape[1])
    meta = json.loads((tmp_path / "onnx" / "representation.json").read_text())
    assert meta["onnx_opset"] == 17 and max(meta["parity_max_abs_error"].values()) <= PARITY_TOLERANCE
    read = representation.mesh_encoder.values.index.numpy()
    if mesh_values:   # the vertices it reads are listed, and opening the folder checked the list on the graph
        assert meta["mesh_vertices"] == sorted(set((read // 3).tolist()))
        assert encoders.mesh_vertices.tolist() == meta["mesh_vertices"]
    else:
        assert "mesh_vertices" not in meta and encoders.mesh_vertices is None


def test_export_refuses_a_checkpoint_without_encoders(tmp_path):
    save_checkpoint(tmp_path / "bad.pt", {"meta": "{}"})
    with pytest.raises(ModelError, match="bad.pt: checkpoint lacks speech_encoder, mesh_encoder; expected one "
                                         "written by `python -m training represent`"):
        export_representation(tmp_path / "bad.pt", tmp_path / "onnx")


def test_an_exported_representation_is_replaced_only_with_force_and_never_by_a_failed_export(tmp_path, monkeypatch):
    import training.representation.export as export
    first = random_checkpoint(tmp_path / "first.pt", "two-stage", "frontend", 0)
    second = random_checkpoint(tmp_path / "second.pt", "syncnet", "frontend", 0)
    out = tmp_path / "onnx"
    export_representation(first, out)
    (out / "MODEL_CARD.md").write_text("the card stays")
    before = {name: (out / name).read_bytes() for name in ("speech_encoder.onnx", "mesh_encoder.onnx",
                                                          "representation.json")}
    with pytest.raises(BackendError, match="already holds an exported representation .*pass --force"):
        export_representation(second, out)
    monkeypatch.setattr(export, "PARITY_TOLERANCE", -1.0)       # every export now fails its parity check
    with pytest.raises(ModelError, match="is unchanged"):
        export_representation(second, out, force=True)
    assert {name: (out / name).read_bytes() for name in before} == before
    monkeypatch.undo()
    export_representation(second, out, force=True)
    assert (out / "representation.json").read_bytes() != before["representation.json"]
    assert (out / "MODEL_CARD.md").read_text() == "the card stays"
    assert sorted(path.name for path in out.iterdir()) == ["MODEL_CARD.md", *sorted(before)]   # no leftovers


SHIPPED = {SPEECH_MESH: default_models_dir(SPEECH_MESH), PLRS_EVALUATOR: default_models_dir(PLRS_EVALUATOR)}


@pytest.fixture(scope="module", params=sorted(SHIPPED))
def shipped(request):
    """(name, folder, ONNX encoders, representation.json) of each shipped set: the representation (the critic of
    the perceptual loss, `models/speech_mesh/`) and the independent PLRS evaluator (`models/plrs_evaluator/`)."""
    folder = SHIPPED[request.param]
    if not (folder / "speech_encoder.onnx").is_file():
        pytest.fail(f"{folder} lacks the shipped speech-mesh models")
    return (request.param, folder, OnnxSpeechMeshEncoders.from_directory(folder),
            json.loads((folder / "representation.json").read_text()))


def test_shipped_models_are_small_and_documented(shipped):
    name, folder, encoders, meta = shipped
    total = sum(path.stat().st_size for path in folder.iterdir() if path.is_file())
    assert total <= 12 * 2 ** 20
    assert meta["config"]["name"] == "small" and meta["corpus"]["synthetic"] is True
    assert encoders.speech_input == meta["config"]["model"]["speech_input"]
    card = (folder / "MODEL_CARD.md").read_text()
    assert "SYNTHETIC" in card and f"seed {meta['config']['seed']}" in card


def test_the_evaluator_is_trained_apart_from_the_critic():
    """Another seed and the other half of the training sentences (the paper's authors did the same)."""
    critic, evaluator = (json.loads((SHIPPED[name] / "representation.json").read_text())
                         for name in (SPEECH_MESH, PLRS_EVALUATOR))
    assert critic["config"]["seed"] != evaluator["config"]["seed"]
    assert {critic["config"]["data_half"], evaluator["config"]["data_half"]} == {0, 1}
    assert not set(critic["corpus"]["train_sentences"]) & set(evaluator["corpus"]["train_sentences"])
    checkpoint = SHIPPED[SPEECH_MESH] / "representation.pt"   # what generators train against
    assert json.loads(load_checkpoint(checkpoint)["meta"])["config"] == critic["config"]


def test_the_evaluators_bands_come_from_its_calibration_on_real_speech():
    report = json.loads((SHIPPED[PLRS_EVALUATOR] / "evaluator.json").read_text())
    good, fair = read_bands(SHIPPED[PLRS_EVALUATOR])
    calibration = report["calibration"]
    assert calibration["ground_truth"]["min"] >= fair and calibration["ground_truth"]["reads"]["poor"] == 0
    assert calibration["static"]["max"] < good and calibration["static"]["reads"]["good"] == 0
    assert calibration["ground_truth"]["mean"] > calibration["shift_3"]["mean"] > calibration["shuffled"]["mean"]


def test_shipped_offset_curve_peaks_at_zero_on_held_out_corpus_clips(shipped, ci_corpus, tmp_path_factory):
    from backend.speech_feature_cache import SpeechFeatureCache
    from training.representation.clips import load_corpus_clips
    from training.representation.properties import clip_embeddings, offset_curve, plrs_pairings
    _, _, encoders, meta = shipped
    cache = SpeechFeatureCache(tmp_path_factory.mktemp("features"))
    clips = load_corpus_clips(ci_corpus, "val", feature_cache=cache)   # ci val: a speaker the model never saw
    curve = offset_curve([clip_embeddings(encoders, clip) for clip in clips])
    assert np.argmax(curve) == 10  # offset 0
    assert curve[10] > max(curve[7], curve[13]) > min(curve[0], curve[20])  # 0 > ±3 > one of ±10
    plrs = plrs_pairings(encoders, clips)
    assert plrs["ground_truth"] > max(plrs["shift_-3"], plrs["shift_+3"], plrs["shuffled"])
