"""Dataset folders (VOCASET converted layout, corpus manifest) and the `score` command, on SYNTHETIC clips."""

import csv
import json
import pickle

import numpy as np
import pytest
import soundfile

from backend.cli import main
from backend.datasets import open_dataset
from backend.errors import BackendError, MetricError
from backend.metrics.evaluation import find_predictions
from onnx_test_models import linear_model
from synthetic_talking import envelope_audio, speech_like_envelope, talking_sequence

RATE = 16000
SUBJECTS = ("FaceTalk_170809_00138_TA", "FaceTalk_170731_00024_TA")
LAG = 2


def clip_frames(template, lips, index):
    """30 fps clip `index`: louder clips open the mouth wider (so SLCC has something to find)."""
    envelope = speech_like_envelope(200, seed=index)
    loudness = 0.4 + 0.15 * index
    return envelope_audio(loudness * envelope, RATE, seed=index), talking_sequence(template, lips, loudness * envelope)


@pytest.fixture
def no_shipped_encoders(monkeypatch, tmp_path):
    """Hide the shipped speech-mesh models, so the 'no encoder models' path is what runs."""
    monkeypatch.setattr("backend.metrics.plrs.default_models_dir", lambda *name: tmp_path / "no-models")


@pytest.fixture
def vocaset_layout(flame_and_regions, tmp_path):
    """dataset/ at 60 fps (each 30 fps frame doubled) with templates.pkl; preds/ lag GT by LAG frames."""
    template, regions = flame_and_regions
    data, preds = tmp_path / "dataset", tmp_path / "preds"
    for folder in (data / "vertices_npy", data / "wav", preds):
        folder.mkdir(parents=True)
    for number, (subject, sentence) in enumerate((s, n) for s in SUBJECTS for n in (21, 22, 23)):
        clip_id = f"{subject}_sentence{sentence:02d}"
        audio, frames = clip_frames(template, regions.lips, number)
        soundfile.write(data / "wav" / f"{clip_id}.wav", audio, RATE, subtype="PCM_16")
        np.save(data / "vertices_npy" / f"{clip_id}.npy", np.repeat(frames, 2, axis=0).reshape(400, -1))
        late = np.concatenate([np.repeat(frames[:1], LAG, axis=0), frames[:-LAG]])
        np.save(preds / f"{clip_id}_condition_FaceTalk_170728_03272_TA.npy", late.astype(np.float32))
    with open(data / "templates.pkl", "wb") as stream:
        pickle.dump({subject: template for subject in SUBJECTS}, stream)
    np.save(preds / "FaceTalk_170809_00138_TA_sentence99_condition_X.npy", np.zeros((10, 5023, 3)))
    flat = np.repeat(template[None], 200, axis=0)
    np.save(preds / f"{SUBJECTS[0]}_sentence21.npy", flat)  # no lip motion: fewer than 3 extrema
    return data, preds


def test_predictions_are_matched_by_name_including_the_condition_suffix(vocaset_layout):
    data, preds = vocaset_layout
    dataset = open_dataset(data, fps=None)
    assert dataset.fps == 60 and len(dataset.clip_ids()) == 6 and set(dataset.subject_templates()) == set(SUBJECTS)
    found = {p.path.name: (p.clip.id if p.clip else None, p.condition) for p in find_predictions(preds, dataset)}
    assert found[f"{SUBJECTS[1]}_sentence22_condition_FaceTalk_170728_03272_TA.npy"] == (
        f"{SUBJECTS[1]}_sentence22", "FaceTalk_170728_03272_TA")
    assert found["FaceTalk_170809_00138_TA_sentence99_condition_X.npy"] == (None, "X")
    assert dataset.entry(f"{SUBJECTS[1]}_sentence22").subject == SUBJECTS[1]


def test_score_folder_prints_a_table_and_writes_csv_and_json(no_shipped_encoders, vocaset_layout, flame_masks, tmp_path,
                                                             capsys):
    data, preds = vocaset_layout
    code = main(["score", "--pred-dir", str(preds), "--data-dir", str(data), "--masks", str(flame_masks),
                 "--csv", str(tmp_path / "clips.csv"), "--json", str(tmp_path / "scores.json")])
    table = capsys.readouterr().out
    assert code == 0
    report = json.loads((tmp_path / "scores.json").read_text())
    summary = {entry["name"]: entry for entry in report["summary"]}
    assert summary["MTM"]["value"] == pytest.approx(LAG * 1000 / 30)
    assert (summary["MTM"]["scored"], summary["MTM"]["skipped"]) == (6, 2)  # unknown clip + motionless clip
    assert summary["LVE"]["scored"] == 7 and summary["FDD"]["value"] is not None
    assert summary["SLCC"]["value"] is not None and "ΔSLCC" in summary and "SLCC data" in summary
    assert summary["PLRS"]["note"] == "n/a (no speech-mesh encoder models found)"
    assert f"| MTM | {LAG * 1000 / 30:.4g} | ms | 6 | 2 |" in table
    assert "| PLRS | n/a |" in table
    rows = list(csv.DictReader(open(tmp_path / "clips.csv")))
    assert len(rows) == 8
    skipped = [row for row in rows if row["mtm_skipped"]]
    assert len(skipped) == 1 and "has 0 maxima and 0 minima" in skipped[0]["mtm_skipped"]
    assert [row["mtm_deltas"] for row in rows if row["mtm_deltas"]][0].split(";")[0] == str(LAG)


def test_score_folder_with_encoder_models_reports_plrs(vocaset_layout, flame_masks, tmp_path, capsys):
    data, preds = vocaset_layout
    rng = np.random.default_rng(0)
    models = tmp_path / "models"
    models.mkdir()
    linear_model(models / "speech_encoder.onnx", "fbank", (20, 128), rng.normal(size=(2560, 4)))
    linear_model(models / "mesh_encoder.onnx", "vertices", (5, 15069), rng.normal(size=(75345, 4)))
    code = main(["score", "--pred-dir", str(preds), "--data-dir", str(data), "--masks", str(flame_masks),
                 "--encoders", str(models), "--json", str(tmp_path / "s.json")])
    summary = {e["name"]: e for e in json.loads((tmp_path / "s.json").read_text())["summary"]}
    assert code == 0 and summary["PLRS"]["scored"] == 7 and -1 <= summary["PLRS"]["value"] <= 1


@pytest.mark.parametrize("arguments, message", [
    (["--gt-fps", "25"], "ground truth is at 25 fps but predictions are at 30 fps; frame rates must match"),
    (["--split", "test-a"], "unknown split 'test-a' for a converted dataset; known splits: train, val, test"),
])
def test_folder_errors_are_one_clear_line(vocaset_layout, flame_masks, capsys, arguments, message):
    data, preds = vocaset_layout
    code = main(["score", "--pred-dir", str(preds), "--data-dir", str(data), "--masks", str(flame_masks),
                 *arguments])
    assert code == 2 and message in capsys.readouterr().err


def test_resampling_on_request_scores_mismatched_frame_rates(vocaset_layout, flame_masks, capsys):
    data, preds = vocaset_layout
    code = main(["score", "--pred-dir", str(preds), "--data-dir", str(data), "--masks", str(flame_masks),
                 "--gt-fps", "45", "--resample"])
    assert code == 0 and "| MTM |" in capsys.readouterr().out


def test_empty_folders_raise_metric_errors(vocaset_layout, tmp_path):
    data, _ = vocaset_layout
    (tmp_path / "empty_preds").mkdir()
    with pytest.raises(MetricError, match="empty_preds: no predictions; expected <clip>.npy"):
        find_predictions(tmp_path / "empty_preds", open_dataset(data))
    (tmp_path / "empty_data" / "vertices_npy").mkdir(parents=True)
    with pytest.raises(BackendError, match=r"empty_data[/\\]wav: folder not found; a converted dataset needs "
                                           "vertices_npy/, wav/ and templates.pkl"):
        open_dataset(tmp_path / "empty_data")
    with pytest.raises(BackendError, match="empty_preds: no known dataset layout found"):
        open_dataset(tmp_path / "empty_preds")


def test_a_prediction_at_the_wrong_frame_rate_is_reported(vocaset_layout, flame_masks, capsys):
    data, preds = vocaset_layout
    code = main(["score", "--pred-dir", str(preds), "--data-dir", str(data), "--masks", str(flame_masks),
                 "--gt-fps", "30"])  # GT is really 60 fps: twice as long as the predictions
    assert code == 2 and "the frame rates probably do not match" in capsys.readouterr().err


def test_corpus_manifest_gives_fps_subjects_and_splits(flame_and_regions, flame_masks, tmp_path, capsys):
    template, regions = flame_and_regions
    data, preds = tmp_path / "corpus", tmp_path / "preds"
    for folder in (data / "vertices_npy", data / "wav", data / "templates", preds):
        folder.mkdir(parents=True)
    clips = []
    for number in range(8):
        clip_id = f"spk{number % 2}_utt{number}"
        audio, frames = clip_frames(template, regions.lips, number)
        soundfile.write(data / "wav" / f"{clip_id}.wav", audio, RATE, subtype="PCM_16")
        np.save(data / "vertices_npy" / f"{clip_id}.npy", frames.reshape(len(frames), -1))
        np.save(preds / f"{clip_id}.npy", frames)
        clips.append({"id": clip_id, "subject": f"spk{number % 2}", "sentence": number, "level": None,
                      "split": "test" if number < 6 else "train"})
    for subject in ("spk0", "spk1"):
        np.savez(data / "templates" / f"{subject}.npz", vertices=template)
    (data / "manifest.json").write_text(json.dumps({"fps": 30, "synthetic": True, "clips": clips}))
    dataset = open_dataset(data, split="test", fps=None)
    assert dataset.fps == 30 and dataset.synthetic and len(dataset.clip_ids()) == 6
    code = main(["score", "--pred-dir", str(preds), "--data-dir", str(data), "--masks", str(flame_masks),
                 "--split", "test", "--json", str(tmp_path / "s.json")])
    summary = {e["name"]: e for e in json.loads((tmp_path / "s.json").read_text())["summary"]}
    assert code == 0 and summary["MTM"]["value"] == 0.0 and summary["MTM"]["skipped"] == 2  # 2 train clips
    assert summary["LVE"]["value"] == 0.0 and summary["ΔSLCC"]["value"] == pytest.approx(0.0)
    assert "SYNTHETIC" in summary["dataset"]["note"]
    with pytest.raises(BackendError, match="says the clips are at 30 fps but 60 fps was given"):
        open_dataset(data, native_fps=60)


def test_score_one_clip_with_ground_truth_and_template(no_shipped_encoders, flame_and_regions, flame_ply, flame_masks, tmp_path,
                                                       capsys):
    template, regions = flame_and_regions
    audio, frames = clip_frames(template, regions.lips, 3)
    soundfile.write(tmp_path / "a.wav", audio, RATE, subtype="PCM_16")
    np.save(tmp_path / "gt.npy", np.repeat(frames, 2, axis=0))
    np.save(tmp_path / "pred.npy", np.concatenate([np.repeat(frames[:1], 3, axis=0), frames[:-3]]))
    code = main(["score", "--pred", str(tmp_path / "pred.npy"), "--audio", str(tmp_path / "a.wav"),
                 "--gt", str(tmp_path / "gt.npy"), "--gt-fps", "60", "--template", str(flame_ply),
                 "--masks", str(flame_masks), "--csv", str(tmp_path / "one.csv")])
    table = capsys.readouterr().out
    assert code == 0
    rows = {row["name"]: row for row in csv.DictReader(open(tmp_path / "one.csv"))}
    assert float(rows["MTM"]["value"]) == pytest.approx(100.0)  # 3 frames at 30 fps
    assert float(rows["audio-mesh offset"]["value"]) == pytest.approx(100.0)
    assert rows["PLRS"]["note"] == "n/a (no speech-mesh encoder models found)"
    assert {"LVE", "FDD", "clip SLCC"} <= set(rows) and "| MTM | 100 | ms |" in table


def test_score_needs_exactly_one_mode(flame_masks, tmp_path, capsys):
    code = main(["score", "--pred", "p.npy", "--pred-dir", str(tmp_path), "--masks", str(flame_masks)])
    assert code == 2 and "either --pred and --audio (one clip) or --pred-dir and --data-dir" in capsys.readouterr().err


def test_score_uses_the_shipped_speech_mesh_models_by_default(flame_and_regions, flame_masks, tmp_path, capsys):
    from backend.metrics.plrs import find_encoder_directory
    shipped = find_encoder_directory()
    if shipped is None:
        pytest.fail("the PLRS evaluator is not shipped in models/plrs_evaluator")
    template, regions = flame_and_regions
    audio, frames = clip_frames(template, regions.lips, 2)
    soundfile.write(tmp_path / "a.wav", audio, RATE, subtype="PCM_16")
    np.save(tmp_path / "pred.npy", frames)
    code = main(["score", "--pred", str(tmp_path / "pred.npy"), "--audio", str(tmp_path / "a.wav"),
                 "--masks", str(flame_masks), "--csv", str(tmp_path / "one.csv")])
    capsys.readouterr()
    rows = {row["name"]: row for row in csv.DictReader(open(tmp_path / "one.csv"))}
    assert code == 0
    assert -1.0 <= float(rows["PLRS"]["value"]) <= 1.0


def test_single_clip_scoring_refuses_a_prediction_longer_or_shorter_than_the_audio(no_shipped_encoders, flame_and_regions,
                                                                                   flame_masks, tmp_path, capsys):
    """Issue 16 item 3: frozen frames appended (or cut) beyond one frame are an error giving both lengths."""
    template, regions = flame_and_regions
    audio, frames = clip_frames(template, regions.lips, 2)   # 200 frames of audio at 30 fps
    soundfile.write(tmp_path / "a.wav", audio, RATE, subtype="PCM_16")
    base = ["score", "--audio", str(tmp_path / "a.wav"), "--masks", str(flame_masks)]
    longer = np.concatenate([frames, np.repeat(frames[-1:], 40, axis=0)])   # 1.2x the audio
    for name, sequence in (("longer", longer), ("shorter", frames[:180])):
        np.save(tmp_path / f"{name}.npy", sequence)
        assert main(base + ["--pred", str(tmp_path / f"{name}.npy")]) == 2
        error = capsys.readouterr().err
        assert f"the animation has {len(sequence)} frames" in error and "the audio spans 200 frames" in error
    np.save(tmp_path / "exact.npy", frames)
    np.save(tmp_path / "one_more.npy", np.concatenate([frames, frames[-1:]]))
    outputs = []
    for name in ("exact", "one_more"):
        assert main(base + ["--pred", str(tmp_path / f"{name}.npy"), "--json", str(tmp_path / f"{name}.json")]) == 0
        outputs.append(json.loads((tmp_path / f"{name}.json").read_text()))
    assert outputs[0] == outputs[1]   # the extra frame is outside the audio's span, so it is not scored


def test_a_vocaset_folder_without_manifest_has_the_published_splits(no_shipped_encoders, vocaset_layout, flame_masks,
                                                                    tmp_path, capsys):
    data, preds = vocaset_layout   # both subjects are VOCASET test subjects (sentences 21-23)
    code = main(["score", "--pred-dir", str(preds), "--data-dir", str(data), "--masks", str(flame_masks),
                 "--split", "test", "--json", str(tmp_path / "s.json")])
    capsys.readouterr()
    summary = {e["name"]: e for e in json.loads((tmp_path / "s.json").read_text())["summary"]}
    assert code == 0 and summary["LVE"]["scored"] == 7
    assert main(["score", "--pred-dir", str(preds), "--data-dir", str(data), "--masks", str(flame_masks),
                 "--split", "train"]) == 2
    assert "no ground-truth clips in split 'train'" in capsys.readouterr().err
