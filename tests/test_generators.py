"""The torch-free generator runner (backend/generators.py) and `python -m backend animate`, on a tiny
hand-built ONNX one-shot generator: vertices = template + style offset, one frame per frame_count rule."""

import json

import numpy as np
import onnx
import pytest
import soundfile

from backend import generators
from backend.cli import main
from backend.errors import AudioError, MeshError, ModelError
from backend.generators import Cancelled, frame_count, list_generators, load_generator
from onnx_test_models import STYLE_OFFSETS, STYLES, model_json, offset_model, tone, write_generator


@pytest.fixture
def template():
    return np.random.default_rng(0).normal(scale=0.05, size=(5023, 3)).astype(np.float32)


@pytest.mark.parametrize("samples, rate, frames", [(16000, 16000, 30), (8000, 16000, 15), (800, 16000, 2),
                                                   (267, 16000, 1), (266, 16000, 0), (44100, 44100, 30),
                                                   (24000 + 266, 16000, 45), (24000 + 267, 16000, 46)])
def test_frame_count_rounds_half_up(samples, rate, frames):
    assert frame_count(samples, rate) == frames


def test_list_and_load_by_name_and_folder(models_dir, tmp_path):
    (models_dir / "not_a_generator").mkdir()
    infos = list_generators(models_dir)
    assert [info.name for info in infos] == ["offset"]
    info = infos[0]
    assert info.styles == STYLES and info.default_style == "subject_b" and info.kind == "one_shot"
    assert info.synthetic_training_data is True and info.metadata == {"preset": "none"}
    assert load_generator("offset", models_dir).info == info
    assert load_generator(models_dir / "offset").info == info
    assert list_generators(tmp_path / "nowhere") == []


def test_animate_output_shape_style_and_rounding(models_dir, template):
    generator = load_generator("offset", models_dir)
    audio = tone(1.5, 16000)
    vertices = generator.animate(audio, 16000, template, style="subject_c")
    assert vertices.shape == (45, 5023, 3) and vertices.dtype == np.float32
    np.testing.assert_allclose(vertices, np.broadcast_to(template + STYLE_OFFSETS[2], vertices.shape), atol=1e-7)
    default = generator.animate(audio, 16000, template)
    np.testing.assert_allclose(default[0], template + STYLE_OFFSETS[1], atol=1e-7)


def test_animate_resamples_to_16k(models_dir, template):
    generator = load_generator("offset", models_dir)
    vertices = generator.animate(tone(1.0, 44100), 44100, template)
    assert vertices.shape[0] == frame_count(16000) == 30


def test_progress_reports_and_cancel(models_dir, template):
    generator = load_generator("offset", models_dir)
    fractions = []
    generator.animate(tone(0.5, 16000), 16000, template, progress=fractions.append)
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    calls = iter([False, True])
    with pytest.raises(Cancelled, match="animation with generator 'offset' was cancelled"):
        generator.animate(tone(0.5, 16000), 16000, template, should_cancel=lambda: next(calls))


def test_bad_inputs(models_dir, template):
    generator = load_generator("offset", models_dir)
    with pytest.raises(ModelError, match="unknown style 'nobody'.*expected one of subject_a, subject_b, subject_c"):
        generator.animate(tone(0.5, 16000), 16000, template, style="nobody")
    with pytest.raises(MeshError, match=r"template has shape \(100, 3\); expected \(5023, 3\)"):
        generator.animate(tone(0.5, 16000), 16000, template[:100])
    bad = template.copy()
    bad[7, 1] = np.nan
    with pytest.raises(MeshError, match="template has NaN"):
        generator.animate(tone(0.5, 16000), 16000, bad)
    with pytest.raises(AudioError, match="silent"):
        generator.animate(np.zeros(16000, np.float32), 16000, template)
    with pytest.raises(AudioError, match="expected mono samples"):
        generator.animate(np.zeros((2, 16000), np.float32), 16000, template)


@pytest.mark.parametrize("overrides, message", [
    ({"kind": "stepwise"}, "kind 'stepwise' is not supported by this backend version; supported: one_shot"),
    ({"kind": "magic"}, "unknown kind 'magic'; expected one of one_shot"),
    ({"fps": 60}, "fps is 60; this backend runs generators with fps 30"),
    ({"sample_rate": 22050}, "sample_rate is 22050; this backend runs generators with sample_rate 16000"),
    ({"styles": []}, "'styles' is \\[\\]; expected a non-empty list of distinct names"),
    ({"styles": ["a", "a"]}, "expected a non-empty list of distinct names"),
    ({"default_style": "zed"}, "default_style 'zed' is not one of the styles"),
    ({"fps": "30"}, "field 'fps' is '30'; expected a int"),
    ({"synthetic_training_data": 1}, "field 'synthetic_training_data' is 1; expected a bool"),
])
def test_bad_model_json(tmp_path, overrides, message):
    folder = write_generator(tmp_path / "broken", **overrides)
    with pytest.raises(ModelError, match=message):
        load_generator(folder)


def test_missing_field_corrupt_json_and_missing_files(tmp_path):
    folder = write_generator(tmp_path / "nofield")
    values = model_json()
    del values["styles"]
    (folder / "model.json").write_text(json.dumps(values))
    with pytest.raises(ModelError, match="missing field 'styles'; required: name, family"):
        load_generator(folder)
    (folder / "model.json").write_text("{not json")
    with pytest.raises(ModelError, match="model.json: not valid JSON"):
        load_generator(folder)
    (folder / "model.json").write_text("[1, 2]")
    with pytest.raises(ModelError, match="holds a JSON list; expected an object"):
        load_generator(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="no model.json; a generator folder needs model.json and generator.onnx"):
        load_generator(empty)
    with pytest.raises(ModelError, match="generator 'ghost' not found.*available: none"):
        load_generator("ghost", tmp_path / "nowhere")


def test_missing_corrupt_and_mismatched_graphs(tmp_path):
    folder = write_generator(tmp_path / "graph")
    (folder / "generator.onnx").unlink()
    with pytest.raises(ModelError, match="generator graph not found"):
        load_generator(folder)
    (folder / "generator.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        load_generator(folder)
    write_generator(folder, model=offset_model(style_width=2))
    with pytest.raises(ModelError, match="style input has width 2 but model.json lists 3 styles"):
        load_generator(folder)
    write_generator(folder, model=offset_model(output_name="mesh"))
    with pytest.raises(ModelError, match=r"graph outputs are \['mesh'\]; the generator contract needs 'vertices'"):
        load_generator(folder)


def test_default_models_dir_is_repo_models_generators():
    assert generators.default_models_dir().parts[-2:] == ("models", "generators")


def test_animate_command(models_dir, flame_ply, tmp_path, capsys):
    audio_path, out = tmp_path / "speech.wav", tmp_path / "seq.npy"
    soundfile.write(audio_path, tone(2.0, 22050), 22050, subtype="PCM_16")
    code = main(["animate", "--audio", str(audio_path), "--template", str(flame_ply), "--model", "offset",
                 "--models-dir", str(models_dir), "--out", str(out), "--style", "subject_a"])
    assert code == 0
    vertices = np.load(out)
    assert vertices.shape == (60, 5023, 3) and vertices.dtype == np.float32
    assert "60 frames at 30 fps" in capsys.readouterr().out
    assert main(["animate", "--list", "--models-dir", str(models_dir)]) == 0
    assert "offset\ttest" in capsys.readouterr().out


def test_animate_command_errors(models_dir, flame_ply, tmp_path, capsys):
    audio_path = tmp_path / "speech.wav"
    soundfile.write(audio_path, tone(1.0, 16000), 16000, subtype="PCM_16")
    code = main(["animate", "--audio", str(audio_path), "--template", str(flame_ply), "--model", "ghost",
                 "--models-dir", str(models_dir), "--out", str(tmp_path / "x.npy")])
    assert code == 2
    error = capsys.readouterr().err
    assert "generator 'ghost' not found" in error and "available: offset" in error
    with pytest.raises(SystemExit):
        main(["animate", "--audio", str(audio_path)])
    assert "missing --out" in capsys.readouterr().err


def test_shipped_generators_satisfy_the_contract(template):
    """Every generator in the repository's models/generators loads, animates, is small and documented."""
    shipped = list_generators()
    assert generators.DEFAULT_GENERATOR in [info.name for info in shipped]
    for info in shipped:
        assert (info.path / "MODEL_CARD.md").is_file(), info.name
        assert (info.path / "generator.onnx").stat().st_size <= 10 * 1024 * 1024, info.name
        assert info.synthetic_training_data is True
        vertices = load_generator(info.name).animate(tone(1.0, 16000), 16000, template)
        assert vertices.shape == (30, 5023, 3) and np.all(np.isfinite(vertices))


def test_a_graph_giving_the_wrong_frame_count_is_refused(tmp_path):
    """A graph that computes another shape than the contract's (1, T, 5023, 3) is a ModelError naming the
    contract, whether its output is bound to the take's array (animate) or allocated by onnxruntime (streamed),
    never a silently truncated or overrun animation."""
    for factor in (90, 61):   # 1 s -> 45 or 31 frames instead of 30
        model = offset_model()
        for node in model.graph.node:
            if node.output[0] == "sixty":
                node.attribute[0].t.CopyFrom(onnx.helper.make_tensor("sixty", onnx.TensorProto.INT64, [1], [factor]))
        generator = load_generator(write_generator(tmp_path / f"wrong_{factor}", model=model))
        message = rf"returned vertices of shape \(1, {(factor * 16000 + 16000) // 32000}, 5023, 3\); the contract " \
                  r"requires \(1, 30, 5023, 3\)$"
        with pytest.raises(ModelError, match=message):
            generator.animate(tone(1.0, 16000), 16000, np.zeros((5023, 3), np.float32))
        with pytest.raises(ModelError, match=message):
            list(generator.animate_blocks(tone(1.0, 16000), 16000, np.zeros((5023, 3), np.float32)))
