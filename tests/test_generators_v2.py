"""Generator contract v2 (backend.generators, `"input": "speech_features"`): the front end's features resampled
to 30 fps in one place, v2 graphs loaded, run and chunked without seams beside the v1 audio graphs, and the
default generator read from the file `benchmarks/choose_default.py` writes."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from backend.audio import load_audio
from backend.errors import ModelError
from backend.flame import LOWER_LIP_CENTRE
from backend.generators import (DEFAULT_FILE, DEFAULT_GENERATOR, SAMPLE_RATE, chunk_starts, frame_count,
                                list_generators, load_generator, read_default_generator, speech_features)
from backend.speech_frontend import FEATURE_DIM, FRAME_RATE, load_frontend, to_mesh_rate
from onnx_test_models import FEATURE_GAIN, offset_model, tone, write_feature_generator, write_generator

REPO = Path(__file__).resolve().parents[1]


def test_to_mesh_rate_keeps_time_and_reaches_every_front_end_frame():
    ramp = np.arange(101, dtype=np.float32)[:, None]           # 2 s at 50 Hz: value = front-end frame index
    out = to_mesh_rate(ramp, 61)
    assert out.shape == (61, 1) and out.dtype == np.float32
    centres = np.arange(61) * FRAME_RATE / 30
    np.testing.assert_allclose(out[1:-1, 0], centres[1:-1], atol=0.1)   # within 0.1 front-end frame (2 ms)
    for spike in range(2, 98):                                 # a one-frame CTC spike is never lost
        one = np.zeros((101, 1), np.float32)
        one[spike] = 1.0
        assert to_mesh_rate(one, 61).max() >= 1 / 3 - 1e-6


def test_speech_features_are_the_front_end_at_the_mesh_rate(speech_dir):
    audio, _ = load_audio(sorted(speech_dir.glob("*.flac"))[0], SAMPLE_RATE)
    features = speech_features(audio)
    assert features.shape == (frame_count(audio.size), FEATURE_DIM)
    expected = to_mesh_rate(load_frontend().features(audio).stacked(), frame_count(audio.size))
    np.testing.assert_array_equal(features, expected)


def test_a_v2_generator_runs_on_audio_like_a_v1_one(tmp_path, speech_dir, flame_mesh):
    folder = write_feature_generator(tmp_path / "feature")
    generator = load_generator(folder)
    assert generator.info.input == "speech_features" and "input" not in generator.info.metadata
    audio, _ = load_audio(sorted(speech_dir.glob("*.flac"))[0], SAMPLE_RATE)
    template = flame_mesh.vertices.astype(np.float32)
    vertices = generator.animate(audio, SAMPLE_RATE, template, lip_closure=False)   # the graph alone
    expected = template[LOWER_LIP_CENTRE, 1] + FEATURE_GAIN * speech_features(audio)[:, 190]
    assert vertices.shape == (frame_count(audio.size), 5023, 3)
    np.testing.assert_allclose(vertices[:, LOWER_LIP_CENTRE, 1], expected, atol=1e-6)
    assert vertices[:, LOWER_LIP_CENTRE, 1].std() > 1e-4        # the lip follows the speech
    resampled = generator.animate(load_audio(sorted(speech_dir.glob("*.flac"))[0], 44100)[0], 44100, template)
    assert resampled.shape == vertices.shape                    # any input rate, same frames


def test_a_v2_long_take_is_chunked_without_seams(tmp_path, speech_dir, flame_mesh):
    """70 s of real speech through a frame-local v2 graph: the chunked animation equals the one-pass graph on
    the whole take's features (computed once, so no chunk boundary of the front end shows either)."""
    parts = [load_audio(path, SAMPLE_RATE)[0] for path in sorted(speech_dir.glob("*.flac"))[:40]]
    audio = np.concatenate(parts)[:70 * SAMPLE_RATE]
    if audio.size < 70 * SAMPLE_RATE:
        pytest.skip("less than 70 s of speech")
    generator = load_generator(write_feature_generator(tmp_path / "feature"))
    template = flame_mesh.vertices.astype(np.float32)
    chunked = generator.animate(audio, SAMPLE_RATE, template, lip_closure=False)   # the graph alone
    assert len(chunk_starts(audio.size)) == 5   # 20 s chunks every 16 s
    features = speech_features(audio)
    one_pass = generator._run(features, len(features), template, generator.style_vector(None))
    np.testing.assert_allclose(chunked, one_pass, atol=1e-7, rtol=0)


def test_v1_generators_still_run(tmp_path, flame_mesh):
    generator = load_generator(write_generator(tmp_path / "offset"))
    assert generator.info.input == "audio"
    audio = tone(1.0, SAMPLE_RATE)
    assert generator.animate(audio, SAMPLE_RATE, flame_mesh.vertices).shape == (30, 5023, 3)
    shipped = [info for info in list_generators() if info.name.endswith("_small")]
    assert shipped and all(info.input == "audio" for info in shipped)   # the release-1 folders
    assert load_generator(shipped[0].name).animate(audio, SAMPLE_RATE, flame_mesh.vertices).shape == (30, 5023, 3)


def test_input_field_and_graph_must_agree(tmp_path):
    with pytest.raises(ModelError, match="field 'input' is 'video'; expected one of audio, speech_features"):
        load_generator(write_generator(tmp_path / "video", input="video"))
    with pytest.raises(ModelError, match="says input 'speech_features', for which the generator contract needs "
                                         r"speech_features \(1, T, 447\)"):
        load_generator(write_generator(tmp_path / "mismatch", offset_model(), input="speech_features"))
    with pytest.raises(ModelError, match=r"says input 'audio', for which the generator contract needs audio \(1, N\)"):
        load_generator(write_feature_generator(tmp_path / "unlabelled", input="audio"))


def test_choose_default_writes_the_choice_and_the_backend_reads_it(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import choose_default
    root = tmp_path / "generators"
    for name in ("alpha", "beta", "gamma"):
        write_generator(root / name, name=name)
    assert read_default_generator(root) == "alpha"              # no file: the first usable generator by name

    def row(model, key, closure, rest, mtm):
        return {"model": model, "set": choose_default.SETS[key],
                "summary": {"closure": closure, "rest": rest, "mtm_median_ms": mtm}}
    report = {"rows": [row("alpha", "b", 0.1, 0.2, 100.0), row("alpha", "c", 0.1, 0.2, 90.0),
                       row("beta", "b", 0.9, 0.8, 20.0), row("beta", "c", 0.8, 0.9, 30.0),
                       row("gamma", "b", 0.95, 0.7, 25.0), row("gamma", "c", 0.7, 0.6, 35.0),
                       row("rig", "b", 1.0, 1.0, 0.0)]}
    report_path = tmp_path / "real_speech.json"
    report_path.write_text(json.dumps(report))
    assert choose_default.main(["--report", str(report_path), "--models-dir", str(root)]) == 0
    written = json.loads((root / DEFAULT_FILE).read_text())
    assert written["name"] == "beta" and written["rank_sums"] == {"alpha": 18, "beta": 7, "gamma": 11}
    assert written["scores"]["gamma"]["b"] == {"closure": 0.95, "rest": 0.7, "mtm_median_ms": 25.0}
    assert read_default_generator(root) == "beta"
    report["rows"] += [row("delta", "b", 0.86, 0.1, 90.0), row("delta", "c", 0.86, 0.1, 90.0)]   # closes most
    write_generator(root / "delta", name="delta")
    report_path.write_text(json.dumps(report))
    assert choose_default.main(["--report", str(report_path), "--models-dir", str(root)]) == 0
    written = json.loads((root / DEFAULT_FILE).read_text())
    assert written["name"] == "delta" and written["rank_sums"]["delta"] > written["rank_sums"]["beta"]
    shutil.rmtree(root / "delta")
    report["rows"] = [item for item in report["rows"] if item["model"] != "gamma" or item["set"].startswith("b")]
    report_path.write_text(json.dumps(report))
    assert choose_default.main(["--report", str(report_path), "--models-dir", str(root)]) == 2   # gamma lacks set c
    (root / DEFAULT_FILE).write_text(json.dumps({"name": "removed"}))
    assert read_default_generator(root) == "alpha"              # a stale choice falls back, never breaks a UI
    assert DEFAULT_GENERATOR == read_default_generator()        # the shipped choice is what the UIs preselect
