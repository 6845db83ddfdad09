"""Built clips of the SYNTHETIC corpus (v2, compact store): layout, manifest, the reader's decoding, the
articulatory constraints on every voice, SLCC, determinism across worker counts, resuming a killed build,
refusing other corpora's folders, bad inputs, the render and stats commands."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from backend.datasets import open_dataset
from backend.errors import AudioError, MeshError
from backend.flame import LOWER_LIP_CENTRE, UPPER_LIP_CENTRE, FlameRegions
from backend.heldout import is_heldout
from backend.mesh import Mesh, load_flame_mesh, write_mesh
from backend.metrics.mtm import lip_distance_curve
from backend.metrics.phone_checks import check_clip
from backend.rig.flame_rig import CONTROLS, FlameRig
from backend.rig.timeline import BILABIALS, LABIODENTALS, segment_frames
from training.corpus import build as build_module
from training.corpus.__main__ import main
from training.corpus.build import PRESETS, build_corpus, list_utterances, plan_clips
from training.corpus.stats import corpus_stats, voice_family
from training.corpus.voices import heldout_voices, training_voices

REPO = Path(__file__).resolve().parents[1]
CLIPS = 12   # the first four items (kathleen, espeak, kathleen, espeak sentences) at three levels


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, flame_ply, flame_masks, speech_dir):
    out = tmp_path_factory.mktemp("corpus")
    manifest = build_corpus(out, "ci", seed=3, template=flame_ply, masks=flame_masks, speech=speech_dir,
                            limit_clips=CLIPS, show_progress=False, workers=2)
    return out, manifest


def _file_digests(root: Path) -> dict:
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}


def test_layout_and_manifest_schema(corpus):
    root, manifest = corpus
    assert manifest == json.loads((root / "manifest.json").read_text())
    assert manifest["synthetic"] is True and manifest["fps"] == 30 and manifest["sample_rate"] == 16000
    assert manifest["store"] == "controls" and manifest["builder_version"] == "2.0"
    assert {"preset", "seed", "clips", "subjects", "stats", "stats_table"} <= set(manifest)
    assert len(manifest["clips"]) == CLIPS
    for clip in manifest["clips"]:
        assert "/" not in clip["id"] and "_" not in clip["subject"]
        assert clip["level"] in (1, 2, 3) and clip["split"] in ("train", "val", "test")
        assert clip["source"] in ("kathleen", "espeak") and clip["condition"] == "sentence"
        controls = np.load(root / "controls_npy" / f"{clip['id']}.npy")
        assert controls.dtype == np.float16 and controls.shape == (clip["frames"], len(CONTROLS))
        info = soundfile.info(root / "wav" / f"{clip['id']}.wav")
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert clip["frames"] == round(info.frames / 16000 * 30)
        assert clip["timeline"][0][2] == clip["timeline"][-1][2] == "SIL"    # lead and trail silence
        assert clip["timeline"][-1][1] == pytest.approx(clip["duration_s"], abs=0.05)
    with np.load(root / "templates" / "SYN01.npz") as archive:
        assert archive["vertices"].shape == (5023, 3) and archive["vertices"].dtype == np.float32
    assert (root / "rig" / "faces.npy").is_file() and (root / "rig" / "masks.npz").is_file()
    assert {clip["source"] for clip in manifest["clips"]} == {"kathleen", "espeak"}
    assert not list(root.rglob(".*"))   # no temporary file of the atomic writer left


def test_reader_decodes_the_stored_controls_with_the_rig(corpus, flame_ply, flame_masks):
    """Decoded vertices are the rig's animation of the stored float16 controls (the corpus folder alone is
    enough: its rig files are the FLAME ones), and float16 storage costs well under 0.1 mm."""
    root, manifest = corpus
    dataset = open_dataset(root)
    mesh, regions = load_flame_mesh(flame_ply), FlameRegions.load(flame_masks)
    clip_id = manifest["clips"][1]["id"]
    clip = dataset.load(clip_id)
    stored = np.load(root / "controls_npy" / f"{clip_id}.npy")
    rig = FlameRig(dataset.subject_templates()[clip.subject], mesh.faces, regions.masks)
    assert clip.vertices.dtype == np.float32 and clip.vertices.shape == (len(stored), 5023, 3)
    np.testing.assert_allclose(clip.vertices, rig.animate(stored.astype(np.float64)), atol=1e-6)
    np.testing.assert_array_equal(dataset.controls(clip_id), stored.astype(np.float32))
    full_precision = np.random.default_rng(0).uniform(0, 1.5, (50, len(CONTROLS)))
    error = np.abs(rig.animate(full_precision) - rig.animate(full_precision.astype(np.float16))).max()
    assert error < 1e-4
    assert clip.audio.dtype == np.float32 and clip.timeline == [tuple(row) for row in manifest["clips"][1]["timeline"]]


def test_lips_close_during_bilabials_and_touch_the_teeth_during_labiodentals(corpus):
    root, manifest = corpus
    dataset = open_dataset(root)
    closures = contacts = 0
    for clip in manifest["clips"]:
        vertices = dataset.load(clip["id"]).vertices
        times = np.arange(len(vertices)) / 30
        gap = np.linalg.norm(vertices[:, UPPER_LIP_CENTRE] - vertices[:, LOWER_LIP_CENTRE], axis=1)
        for start, end, label in clip["timeline"]:
            frames = segment_frames(start, end, times)
            if label in BILABIALS:
                assert gap[frames].min() < 0.001, (clip["id"], start, label)
                closures += 1
            if label in LABIODENTALS:
                assert gap[frames].max() > 0.002    # the lips part: the lower lip is on the teeth, not closed
                contacts += 1
    assert closures >= 10 and contacts >= 3
    assert manifest["stats"]["bilabial_closure_rate"] == 1.0
    assert manifest["stats"]["labiodental_contact_rate"] == 1.0


def test_every_voice_rests_in_pauses_and_shuts_at_bilabials(ci_corpus):
    """The benchmark's own checks (backend.metrics.phone_checks) on the decoded motion of one clip per voice:
    every TTS training voice, espeak and the Kathleen recordings, in passages with pauses."""
    dataset = open_dataset(ci_corpus)
    manifest = json.loads((ci_corpus / "manifest.json").read_text())
    chosen = {}
    for clip in manifest["clips"]:
        if clip["level"] == 2 and clip["condition"] == "passage":
            chosen.setdefault(voice_family(clip["voice"]).split(":")[0] if clip["source"] == "espeak"
                              else clip["voice"], clip["id"])
    assert set(chosen) == {"kathleen", "espeak", "flite:awb", "flite:slt", "flite:kal16", "festival:slt_hts",
                           "festival:kal", "piper:joe"}
    bilabials = pauses = 0
    for voice, clip_id in chosen.items():
        clip = dataset.load(clip_id)
        gap = lip_distance_curve(clip.vertices)
        checks = check_clip(clip.vertices, clip.timeline, dataset.rig(clip.subject), reference_gap=gap)
        assert checks.pause_frames > 0, voice
        assert checks.rest == 1.0, (voice, checks.rest, checks.pause_gap_mm)
        assert checks.closure in (None, 1.0), (voice, checks.closure)
        bilabials += checks.bilabials
        pauses += checks.pause_frames
    assert bilabials >= 15 and pauses >= 300
    per_voice = manifest["stats"]["checks_by_voice"]
    assert all(row["rest"] in (None, 1.0) and row["closure"] in (None, 1.0) for row in per_voice.values())


def test_jaw_follows_vowel_openness_and_slcc_is_positive(corpus):
    stats = corpus[1]["stats"]
    assert stats["jaw_openness_r"] > 0.7
    assert stats["slcc"]["all"] > 0.3
    assert stats["mtm_one_frame_shift_ms"] == pytest.approx(33.3, abs=5.0)


def test_louder_levels_move_the_lips_more(corpus):
    root, manifest = corpus
    from backend.metrics import lip_intensity, speech_intensity
    dataset = open_dataset(root)
    by_sentence = {}
    for clip in manifest["clips"]:
        samples, _ = soundfile.read(root / "wav" / f"{clip['id']}.wav", dtype="int16")
        lips = lip_intensity(dataset.load(clip["id"]).vertices, np.arange(3400, 3600))
        by_sentence.setdefault(clip["sentence"], {})[clip["level"]] = (speech_intensity(samples), lips)
    for levels in by_sentence.values():
        assert levels[1][0] < levels[2][0] < levels[3][0]
        assert levels[1][1] < levels[2][1] < levels[3][1]


def test_same_seed_gives_identical_bytes_whatever_the_workers(corpus, tmp_path, flame_ply, flame_masks, speech_dir):
    root, _ = corpus
    build_corpus(tmp_path, "ci", seed=3, template=flame_ply, masks=flame_masks, speech=speech_dir,
                 limit_clips=CLIPS, show_progress=False, workers=1)
    assert _file_digests(tmp_path) == _file_digests(root)


def test_killed_build_resumes_to_the_same_corpus(ci_corpus, tmp_path, flame_ply, flame_masks, speech_dir):
    """kill -9 (the whole process group: builder and workers) mid-build, rerun: the build continues, skips
    the finished clips and ends byte-identical to an uninterrupted build; no clip was ever half-written."""
    out = tmp_path / "corpus"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "FLAME_TEMPLATE": str(flame_ply),
           "FLAME_MASKS": str(flame_masks), "SPEECH_DIR": str(speech_dir)}
    process = subprocess.Popen([sys.executable, "-m", "training.corpus", "build", "--preset", "ci", "--seed", "0",
                                "--out", str(out), "--workers", "2"], cwd=REPO, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list((out / "records").glob("*.json"))) < 6 and process.poll() is None:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done = sorted(path.stem for path in (out / "records").glob("*.json"))
    total = len(json.loads((ci_corpus / "manifest.json").read_text())["clips"])
    assert not (out / "manifest.json").exists() and 6 <= len(done) < total
    for clip_id in done:   # a record is written last: its clip's files are complete
        assert np.load(out / "controls_npy" / f"{clip_id}.npy").dtype == np.float16
        assert soundfile.info(out / "wav" / f"{clip_id}.wav").frames > 0
    before = {clip_id: (out / "records" / f"{clip_id}.json").stat().st_mtime_ns for clip_id in done}
    build_corpus(out, "ci", seed=0, template=flame_ply, masks=flame_masks, speech=speech_dir, show_progress=False)
    assert {clip_id: (out / "records" / f"{clip_id}.json").stat().st_mtime_ns for clip_id in done} == before
    assert _file_digests(out) == _file_digests(ci_corpus)


def test_interrupted_build_leaves_no_manifest(tmp_path, monkeypatch, flame_ply, flame_masks, speech_dir):
    (tmp_path / "manifest.json").write_text("{}")   # the manifest of the corpus being replaced goes first
    calls = []

    real_save = np.save

    def failing_save(stream, array, **options):
        calls.append(stream)
        if len(calls) == 3:   # faces, then the first clip's controls, then the second clip's
            stream.write(b"half a clip")
            raise KeyboardInterrupt
        real_save(stream, array, **options)
    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        build_corpus(tmp_path, "ci", template=flame_ply, masks=flame_masks, speech=speech_dir, limit_clips=6,
                     show_progress=False, force=True, workers=1)
    assert not (tmp_path / "manifest.json").exists()
    assert len(list((tmp_path / "controls_npy").glob("*.npy"))) == len(list((tmp_path / "records").glob("*"))) == 1
    assert not list(tmp_path.rglob(".*"))


def test_missing_and_non_flame_templates_are_refused(tmp_path, flame_masks, speech_dir):
    with pytest.raises(MeshError, match="does not exist"):
        build_corpus(tmp_path, template=tmp_path / "absent.ply", masks=flame_masks, speech=speech_dir)
    cube = tmp_path / "cube.ply"
    write_mesh(cube, Mesh(vertices=np.random.default_rng(0).normal(size=(8, 3)),
                          faces=np.array([[0, 1, 2], [2, 3, 0]])))
    with pytest.raises(MeshError, match="has 8 vertices and 2 faces; FLAME topology needs 5023 vertices"):
        build_corpus(tmp_path, template=cube, masks=flame_masks, speech=speech_dir)


def test_bad_preset_and_missing_speech_are_refused(tmp_path, flame_ply, flame_masks):
    with pytest.raises(AudioError, match="unknown preset 'huge'; expected one of ci, small, full"):
        build_corpus(tmp_path, "huge", template=flame_ply, masks=flame_masks)
    with pytest.raises(AudioError, match="recorded-speech folder not found"):
        build_corpus(tmp_path, template=flame_ply, masks=flame_masks, speech=tmp_path / "nowhere")


def test_stats_command_recomputes_the_manifest_stats(corpus, tmp_path, capsys):
    root, manifest = corpus
    assert corpus_stats(root) == manifest["stats"]
    assert main(["stats", str(root), "--plot", str(tmp_path / "stats.png")]) == 0
    printed = capsys.readouterr().out
    assert "| kathleen |" in printed and "rest in pauses" in printed and printed.strip() == \
        manifest["stats_table"].strip()
    assert (tmp_path / "stats.png").stat().st_size > 10_000 and (root / "stats.png").is_file()


def test_render_command_writes_pngs_and_rejects_unknown_clips(corpus, tmp_path, capsys):
    root, manifest = corpus
    clip = manifest["clips"][1]["id"]
    assert main(["render", "--corpus", str(root), "--clip", clip, "--out", str(tmp_path), "--frames", "0,5"]) == 0
    pngs = sorted(tmp_path.glob("*.png"))
    assert [path.name for path in pngs] == [f"{clip}_frame0000.png", f"{clip}_frame0005.png"]
    from matplotlib.image import imread
    image = imread(pngs[0])
    assert image.shape[0] > 300 and image[..., :3].std() > 0.05
    assert main(["render", "--corpus", str(root), "--clip", "nope", "--out", str(tmp_path)]) == 2
    assert "no clip 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_ci_preset_builds_within_budget(tmp_path, flame_ply, flame_masks, speech_dir):
    manifest = build_corpus(tmp_path, "ci", template=flame_ply, masks=flame_masks, speech=speech_dir,
                            show_progress=False)
    size = sum(path.stat().st_size for path in tmp_path.rglob("*") if path.is_file())
    assert len(manifest["clips"]) <= 80 and size < 30e6
    assert {clip["split"] for clip in manifest["clips"]} == {"train", "val", "test"}
    sentences = {split: {name for clip in manifest["clips"] if clip["split"] == split for name in clip["sentences"]}
                 for split in ("train", "val", "test")}
    subjects = {split: {clip["subject"] for clip in manifest["clips"] if clip["split"] == split}
                for split in ("train", "val", "test")}
    for first, second in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not sentences[first] & sentences[second] and not subjects[first] & subjects[second]
    stats = manifest["stats"]
    assert stats["bilabial_closure_rate"] >= 0.98 and stats["jaw_openness_r"] > 0.7 and stats["slcc"]["all"] > 0.3


def test_no_corpus_holds_a_heldout_prompt_or_voice(ci_corpus, corpus, speech_dir):
    """The benchmark's Kathleen held-out prompts (backend.heldout) and unseen voices never reach a corpus:
    checked on built corpora and on the plans of every preset (full included, without building it)."""
    manifests = [json.loads((ci_corpus / "manifest.json").read_text()), corpus[1]]
    for manifest in manifests:
        names = {name for clip in manifest["clips"] for name in clip["sentences"]}
        assert names and not [name for name in names if is_heldout(name)]
        assert not {clip["voice"] for clip in manifest["clips"]} & set(heldout_voices())
    for preset in PRESETS.values():
        _, clips = plan_clips(preset, list_utterances(speech_dir, preset.max_sentence_s), np.random.default_rng(0))
        assert not [name for clip in clips for _, name, _ in clip["sentences"] if is_heldout(name)]
        voices = {clip["voice"] for clip in clips if clip["source"] not in ("kathleen", "nonspeech")}
        assert voices <= set(training_voices()) and not voices & set(heldout_voices())
        sources = {clip["voice"] if clip["source"] != "espeak" else "espeak" for clip in clips}
        assert sources == {"kathleen", "nonspeech", "espeak", "flite:awb", "flite:slt", "flite:kal16",
                           "festival:slt_hts", "festival:kal", "piper:joe"}, preset.name
    _, full = plan_clips(PRESETS["full"], list_utterances(speech_dir), np.random.default_rng(0))
    recorded = {clip["sentences"][0][1] for clip in full if clip["source"] == "kathleen" and clip["condition"] == "sentence"}
    assert recorded == {name for name, _ in list_utterances(speech_dir)}    # every recording that is not held out


def test_heldout_rule_and_dev_folder_are_refused(tmp_path, flame_ply, flame_masks, speech_dir):
    from backend.heldout import prompt_id
    assert prompt_id("arctic_b0538_1592530161") == "arctic_b0538" and is_heldout("arctic_b0538_1592530161")
    assert not is_heldout("arctic_a0001_1592748574") and not is_heldout("jfk")
    takes = [lab.name[: -len(".phones.lab")] for lab in speech_dir.glob("*.phones.lab")]
    held = [take for take in takes if is_heldout(take)]
    assert len(held) >= 150 and 0.09 <= len(held) / len(takes) <= 0.12
    assert not [take for take in build_module.list_utterances(speech_dir, 60.0) if is_heldout(take[0])]
    dev = tmp_path / "speech" / "dev"
    dev.mkdir(parents=True)
    with pytest.raises(AudioError, match="unseen-speaker"):
        build_corpus(tmp_path / "out", "ci", template=flame_ply, masks=flame_masks, speech=dev, show_progress=False)


def test_other_corpora_are_refused_and_the_same_build_continues(tmp_path, flame_ply, flame_masks, speech_dir):
    """A finished corpus needs --force; so does an unfinished build of another plan (preset, seed, version);
    an unfinished build of the same plan continues; --force replaces without old clips left beside the new
    manifest; a folder of other files is refused and untouched."""
    out = tmp_path / "corpus"
    options = dict(template=flame_ply, masks=flame_masks, speech=speech_dir, show_progress=False, workers=1)
    build_corpus(out, "ci", seed=0, limit_clips=3, **options)
    stale = out / "controls_npy" / "stale_clip.npy"
    stale.write_bytes(b"old")
    with pytest.raises(AudioError, match="already holds a corpus"):
        build_corpus(out, "ci", seed=1, limit_clips=3, **options)
    assert stale.exists()
    manifest = build_corpus(out, "ci", seed=1, limit_clips=3, force=True, **options)
    assert not stale.exists() and manifest["seed"] == 1
    assert sorted(path.stem for path in (out / "controls_npy").iterdir()) == sorted(c["id"] for c in manifest["clips"])
    (out / "manifest.json").unlink()          # now an unfinished build of (ci, seed 1, 3 clips)
    with pytest.raises(AudioError, match=r"unfinished build of another corpus \(preset ci, seed 1"):
        build_corpus(out, "ci", seed=2, limit_clips=3, **options)
    assert build_corpus(out, "ci", seed=1, limit_clips=3, **options) == manifest
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"jpg")
    with pytest.raises(AudioError, match="not a corpus's files"):
        build_corpus(other, "ci", force=True, **options)
    assert [path.name for path in other.iterdir()] == ["holiday.jpg"]


def test_a_vertex_store_corpus_has_no_controls(tmp_path):
    from tiny_datasets import write_corpus
    write_corpus(tmp_path, [{"id": "a", "subject": "S1", "sentence": "s1", "level": 1, "split": "train",
                             "timeline": None}])
    dataset = open_dataset(tmp_path)
    assert dataset.store == "vertices"
    with pytest.raises(Exception, match="stores vertices, not rig controls"):
        dataset.controls("a")


def test_score_reads_the_compact_store_as_vertices(corpus, tmp_path, flame_masks):
    """`python -m backend score` gets the decoded ground truth from a v2 corpus: its own motion scores 0."""
    from backend.cli import main as backend_main
    root, manifest = corpus
    dataset = open_dataset(root)
    preds = tmp_path / "preds"
    preds.mkdir()
    for clip in manifest["clips"][:4]:
        np.save(preds / f"{clip['id']}.npy", dataset.load(clip["id"]).vertices)
    assert backend_main(["score", "--pred-dir", str(preds), "--data-dir", str(root), "--masks", str(flame_masks),
                         "--json", str(tmp_path / "s.json")]) == 0
    summary = {entry["name"]: entry for entry in json.loads((tmp_path / "s.json").read_text())["summary"]}
    assert summary["LVE"]["value"] == 0.0 and summary["LVE"]["scored"] == 4
