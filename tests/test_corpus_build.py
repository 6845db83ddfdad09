"""Built clips of the SYNTHETIC corpus: layout, manifest, the articulatory constraints, SLCC, determinism,
atomic output, bad inputs, the render and stats commands."""

import json
import shutil

import numpy as np
import pytest
import soundfile

from backend.errors import AudioError, MeshError
from backend.flame import LOWER_LIP_CENTRE, UPPER_LIP_CENTRE
from backend.mesh import Mesh, write_mesh
from training.corpus import build as build_module
from training.corpus.__main__ import main
from training.corpus.build import build_corpus
from training.corpus.stats import corpus_stats
from backend.rig.timeline import BILABIALS, LABIODENTALS, segment_frames

CLIPS = 12   # SYN01's first four sentences (kathleen, espeak, kathleen, espeak) at three levels


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, flame_ply, flame_masks, speech_dir):
    out = tmp_path_factory.mktemp("corpus")
    manifest = build_corpus(out, "ci", seed=3, template=flame_ply, masks=flame_masks, speech=speech_dir,
                            limit_clips=CLIPS, show_progress=False)
    return out, manifest


def _vertices(root, clip):
    return np.load(root / "vertices_npy" / f"{clip['id']}.npy").reshape(clip["frames"], 5023, 3)


def test_layout_and_manifest_schema(corpus):
    root, manifest = corpus
    assert manifest == json.loads((root / "manifest.json").read_text())
    assert manifest["synthetic"] is True and manifest["fps"] == 30 and manifest["sample_rate"] == 16000
    assert {"preset", "seed", "builder_version", "clips", "subjects", "stats"} <= set(manifest)
    assert len(manifest["clips"]) == CLIPS
    for clip in manifest["clips"]:
        assert "/" not in clip["id"] and "_" not in clip["subject"]
        assert clip["level"] in (1, 2, 3) and clip["split"] in ("train", "val", "test")
        assert clip["source"] in ("kathleen", "espeak")
        vertices = np.load(root / "vertices_npy" / f"{clip['id']}.npy")
        assert vertices.dtype == np.float32 and vertices.shape == (clip["frames"], 15069)
        info = soundfile.info(root / "wav" / f"{clip['id']}.wav")
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert clip["frames"] == round(info.frames / 16000 * 30)
        assert clip["timeline"][-1][1] == pytest.approx(clip["duration_s"], abs=0.05)
    with np.load(root / "templates" / "SYN01.npz") as archive:
        assert archive["vertices"].shape == (5023, 3) and archive["vertices"].dtype == np.float32
    assert {clip["source"] for clip in manifest["clips"]} == {"kathleen", "espeak"}
    assert not list(root.rglob(".*"))   # no temporary file of the atomic writer left


def test_lips_close_during_bilabials_and_touch_the_teeth_during_labiodentals(corpus):
    root, manifest = corpus
    from training.corpus.paths import default_paths
    closures = contacts = 0
    for clip in manifest["clips"]:
        vertices = _vertices(root, clip)
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


def test_jaw_follows_vowel_openness_and_slcc_is_positive(corpus):
    stats = corpus[1]["stats"]
    assert stats["jaw_openness_r"] > 0.7
    assert stats["slcc"]["all"] > 0.3
    assert stats["mtm_one_frame_shift_ms"] == pytest.approx(33.3, abs=5.0)


def test_louder_levels_move_the_lips_more(corpus):
    root, manifest = corpus
    from backend.metrics import lip_intensity, speech_intensity
    by_sentence = {}
    for clip in manifest["clips"]:
        samples, _ = soundfile.read(root / "wav" / f"{clip['id']}.wav", dtype="int16")
        lips = lip_intensity(_vertices(root, clip), np.arange(3400, 3600))
        by_sentence.setdefault(clip["sentence"], {})[clip["level"]] = (speech_intensity(samples), lips)
    for levels in by_sentence.values():
        assert levels[1][0] < levels[2][0] < levels[3][0]
        assert levels[1][1] < levels[2][1] < levels[3][1]


def test_same_seed_gives_identical_bytes(corpus, tmp_path, flame_ply, flame_masks, speech_dir):
    root, manifest = corpus
    build_corpus(tmp_path, "ci", seed=3, template=flame_ply, masks=flame_masks, speech=speech_dir, limit_clips=4,
                 show_progress=False)
    for clip in manifest["clips"][:4]:
        for folder, suffix in (("wav", ".wav"), ("vertices_npy", ".npy")):
            assert (tmp_path / folder / f"{clip['id']}{suffix}").read_bytes() == \
                (root / folder / f"{clip['id']}{suffix}").read_bytes()
    assert (tmp_path / "templates" / "SYN01.npz").read_bytes() == (root / "templates" / "SYN01.npz").read_bytes()


def test_interrupted_build_leaves_no_manifest(tmp_path, monkeypatch, flame_ply, flame_masks, speech_dir):
    (tmp_path / "manifest.json").write_text("{}")   # the manifest of the corpus being replaced goes first
    calls = []

    real_save = np.save

    def failing_save(stream, array, **options):
        calls.append(stream)
        if len(calls) == 2:
            stream.write(b"half a clip")
            raise KeyboardInterrupt
        real_save(stream, array, **options)
    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        build_corpus(tmp_path, "ci", template=flame_ply, masks=flame_masks, speech=speech_dir, limit_clips=3,
                     show_progress=False, force=True)
    assert not (tmp_path / "manifest.json").exists()
    assert len(list((tmp_path / "vertices_npy").glob("*.npy"))) == 1
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
    with pytest.raises(AudioError, match="unknown preset 'huge'; expected one of ci, full"):
        build_corpus(tmp_path, "huge", template=flame_ply, masks=flame_masks)
    with pytest.raises(AudioError, match="recorded-speech folder not found"):
        build_corpus(tmp_path, template=flame_ply, masks=flame_masks, speech=tmp_path / "nowhere")


def test_stats_command_recomputes_the_manifest_stats(corpus, flame_ply, flame_masks):
    root, manifest = corpus
    assert corpus_stats(root, flame_ply, flame_masks) == manifest["stats"]


def test_render_command_writes_pngs_and_rejects_unknown_clips(corpus, tmp_path, flame_ply, capsys):
    root, manifest = corpus
    clip = manifest["clips"][1]["id"]
    assert main(["render", "--corpus", str(root), "--clip", clip, "--out", str(tmp_path), "--frames", "0,5",
                 "--template", str(flame_ply)]) == 0
    pngs = sorted(tmp_path.glob("*.png"))
    assert [path.name for path in pngs] == [f"{clip}_frame0000.png", f"{clip}_frame0005.png"]
    from matplotlib.image import imread
    image = imread(pngs[0])
    assert image.shape[0] > 300 and image[..., :3].std() > 0.05
    assert main(["render", "--corpus", str(root), "--clip", "nope", "--out", str(tmp_path),
                 "--template", str(flame_ply)]) == 2
    assert "no clip 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_ci_preset_builds_within_budget(tmp_path, flame_ply, flame_masks, speech_dir):
    manifest = build_corpus(tmp_path, "ci", template=flame_ply, masks=flame_masks, speech=speech_dir,
                            show_progress=False)
    size = sum(path.stat().st_size for path in tmp_path.rglob("*") if path.is_file())
    assert len(manifest["clips"]) <= 60 and size < 300e6
    assert {clip["split"] for clip in manifest["clips"]} == {"train", "val", "test"}
    sentences = {split: {clip["sentence"] for clip in manifest["clips"] if clip["split"] == split}
                 for split in ("train", "val", "test")}
    subjects = {split: {clip["subject"] for clip in manifest["clips"] if clip["split"] == split}
                for split in ("train", "val", "test")}
    for first, second in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not sentences[first] & sentences[second] and not subjects[first] & subjects[second]
    stats = manifest["stats"]
    assert stats["bilabial_closure_rate"] >= 0.98 and stats["jaw_openness_r"] > 0.7 and stats["slcc"]["all"] > 0.3


def test_no_built_corpus_holds_a_heldout_prompt(ci_corpus, corpus):
    """The benchmark's Kathleen held-out prompts (backend.heldout) never reach a corpus, whatever the preset."""
    from backend.heldout import is_heldout
    for manifest in (json.loads((ci_corpus / "manifest.json").read_text()), corpus[1]):
        sentences = {clip["sentence"] for clip in manifest["clips"]}
        assert sentences and not [sentence for sentence in sentences if is_heldout(sentence)]


def test_heldout_rule_and_dev_folder_are_refused(tmp_path, flame_ply, flame_masks, speech_dir):
    from backend.heldout import is_heldout, prompt_id
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


def test_building_into_a_finished_corpus_needs_force_and_leaves_no_old_clip(tmp_path, flame_ply, flame_masks,
                                                                             speech_dir):
    """Issue 16 item 6: a second build refuses a finished corpus; --force replaces it without old clips left
    beside the new manifest; a folder of other files is refused and untouched."""
    out = tmp_path / "corpus"
    build_corpus(out, "ci", seed=0, template=flame_ply, masks=flame_masks, speech=speech_dir, limit_clips=3,
                 show_progress=False)
    stale = out / "vertices_npy" / "stale_clip.npy"
    stale.write_bytes(b"old")
    with pytest.raises(AudioError, match="already holds a corpus"):
        build_corpus(out, "ci", seed=1, template=flame_ply, masks=flame_masks, speech=speech_dir, limit_clips=3,
                     show_progress=False)
    assert stale.exists()
    manifest = build_corpus(out, "ci", seed=1, template=flame_ply, masks=flame_masks, speech=speech_dir,
                            limit_clips=3, show_progress=False, force=True)
    assert not stale.exists() and manifest["seed"] == 1
    assert sorted(path.stem for path in (out / "vertices_npy").iterdir()) == sorted(c["id"] for c in manifest["clips"])
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"jpg")
    with pytest.raises(AudioError, match="not a corpus's files"):
        build_corpus(other, "ci", template=flame_ply, masks=flame_masks, speech=speech_dir, show_progress=False,
                     force=True)
    assert [path.name for path in other.iterdir()] == ["holiday.jpg"]
