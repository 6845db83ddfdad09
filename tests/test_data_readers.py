"""Dataset readers on tiny synthetic fixtures written in each real layout (see tiny_datasets.py)."""

import json
import os
import pickle

import numpy as np
import pytest

from backend import safe_pickle
from backend.audio import AudioError
from backend.errors import BackendError, MeshError
from backend.safe_pickle import UnsafePickleError
from tiny_datasets import (python2_pickle, random_frames, write_converted, write_corpus,
                           write_vocaset_raw)
from backend.datasets import Clip, detect_kind, open_dataset
from backend.frame_rate import resample_frames
from backend.datasets.splits import BIWI_SPLITS, VOCASET_SPLITS, split_of

TRAIN_SUBJECT = "FaceTalk_170728_03272_TA"
VAL_SUBJECT = "FaceTalk_170811_03275_TA"
TEST_SUBJECT = "FaceTalk_170809_00138_TA"


# --- frame-rate conversion ------------------------------------------------------------------------
def test_integer_ratio_keeps_every_kth_frame():
    frames = random_frames(9, 4)
    np.testing.assert_array_equal(resample_frames(frames, 60, 30), frames[[0, 2, 4, 6, 8]])
    np.testing.assert_array_equal(resample_frames(frames, 30, 30), frames)


def test_other_ratios_interpolate_linearly():
    ramp = np.arange(11, dtype=np.float32)[:, None, None] * np.ones((1, 2, 3), np.float32)  # value = frame
    at_30 = resample_frames(ramp, 25, 30)  # 10 frames at 25 fps = 0.4 s -> frames at 0, 1/30, ... 0.4 s
    np.testing.assert_allclose(at_30[:, 0, 0], np.arange(13) * 25 / 30, atol=1e-5)
    at_60 = resample_frames(ramp[:3], 30, 60)
    np.testing.assert_allclose(at_60[:, 1, 2], [0, 0.5, 1, 1.5, 2], atol=1e-6)


def test_nonpositive_fps_is_refused(tmp_path):
    with pytest.raises(BackendError, match="frame rates must be positive, got 0 -> 30"):
        resample_frames(random_frames(3, 2), 0, 30)
    write_converted(tmp_path, {f"{TRAIN_SUBJECT}_sentence01": 30}, 60, 6)
    with pytest.raises(BackendError, match="target fps must be positive, got -30"):
        open_dataset(tmp_path, fps=-30)


# --- VOCASET raw ------------------------------------------------------------------------------------
@pytest.fixture
def vocaset(tmp_path):
    clips = {TRAIN_SUBJECT: {"sentence01": 30, "sentence02": 31},
             VAL_SUBJECT: {"sentence05": 30, "sentence21": 32},
             TEST_SUBJECT: {"sentence40": 30}}
    return tmp_path, write_vocaset_raw(tmp_path, clips)


def test_vocaset_raw_lists_clips_and_loads_at_30_fps(vocaset):
    root, sequences = vocaset
    dataset = open_dataset(root)
    assert detect_kind(root) == "vocaset" and dataset.kind == "vocaset"
    assert dataset.clip_ids() == sorted(sequences) and len(dataset) == 5
    clip = dataset.load(f"{TRAIN_SUBJECT}_sentence02")
    assert isinstance(clip, Clip)
    assert (clip.subject, clip.sentence, clip.level, clip.timeline) == (TRAIN_SUBJECT, "sentence02", None, None)
    assert clip.fps == 30 and clip.vertices.dtype == np.float32
    np.testing.assert_array_equal(clip.vertices, sequences[f"{TRAIN_SUBJECT}_sentence02"][::2])
    assert clip.vertices.shape == (16, 5023, 3) and clip.template.shape == (5023, 3)
    assert clip.audio.dtype == np.float32 and clip.sample_rate == 22000
    assert len(clip.audio) == round(31 / 60 * 22000)


def test_vocaset_raw_audio_is_int16_over_32768_and_template_matches(vocaset):
    root, _ = vocaset
    raw_audio = safe_pickle.load(root / "raw_audio_fixed.pkl")[VAL_SUBJECT]["sentence21"]["audio"]
    templates = safe_pickle.load(root / "templates.pkl")
    clip = open_dataset(root, fps=None).load(f"{VAL_SUBJECT}_sentence21")
    np.testing.assert_array_equal(clip.audio, raw_audio.astype(np.float32) / 32768)
    np.testing.assert_allclose(clip.template, templates[VAL_SUBJECT], rtol=1e-6)
    assert clip.fps == 60 and len(clip.vertices) == 32


def test_vocaset_raw_splits_follow_the_published_ranges(vocaset):
    root, _ = vocaset
    assert open_dataset(root, split="train").clip_ids() == [f"{TRAIN_SUBJECT}_sentence01", f"{TRAIN_SUBJECT}_sentence02"]
    assert open_dataset(root, split="val").clip_ids() == [f"{VAL_SUBJECT}_sentence21"]  # sentence05 is in no split
    assert open_dataset(root, split="test").clip_ids() == [f"{TEST_SUBJECT}_sentence40"]
    with pytest.raises(BackendError, match="unknown split 'test-a' for a vocaset dataset; known splits: train, val, test"):
        open_dataset(root, split="test-a")


def test_iteration_yields_every_clip_in_order(vocaset):
    root, _ = vocaset
    clips = list(open_dataset(root, split="train"))
    assert [(clip.subject, clip.sentence) for clip in clips] == [(TRAIN_SUBJECT, "sentence01"), (TRAIN_SUBJECT, "sentence02")]


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_vocaset_raw_refuses_a_malicious_templates_pickle(vocaset):
    root, _ = vocaset
    (root / "templates.pkl").write_bytes(pickle.dumps({TRAIN_SUBJECT: _Exploit()}))
    dataset = open_dataset(root)  # listing does not touch the templates
    with pytest.raises(UnsafePickleError, match=r"templates\.pkl: refused to load 'posix\.system'"):
        dataset.load(f"{TRAIN_SUBJECT}_sentence01")


def test_vocaset_raw_missing_file_names_what_is_expected(vocaset):
    root, _ = vocaset
    (root / "raw_audio_fixed.pkl").unlink()
    with pytest.raises(BackendError, match="missing raw_audio_fixed.pkl; a raw VOCASET folder holds data_verts.npy, "
                                           "raw_audio_fixed.pkl, templates.pkl, subj_seq_to_idx.pkl"):
        open_dataset(root)


def test_vocaset_raw_index_beyond_the_vertex_array_is_a_mesh_error(tmp_path):
    write_vocaset_raw(tmp_path, {TRAIN_SUBJECT: {"sentence01": 30}}, vertex_count=10)
    python2_pickle({TRAIN_SUBJECT: {"sentence01": {0: 0, 1: 99}}}, tmp_path / "subj_seq_to_idx.pkl")
    with pytest.raises(MeshError, match="clip 'FaceTalk_170728_03272_TA_sentence01' points at row 99 but "
                                        ".*data_verts.npy has 30 rows"):
        open_dataset(tmp_path).load(f"{TRAIN_SUBJECT}_sentence01")


def test_vocaset_raw_nan_frames_are_reported(tmp_path):
    write_vocaset_raw(tmp_path, {TRAIN_SUBJECT: {"sentence01": 30}}, vertex_count=10)
    verts = np.load(tmp_path / "data_verts.npy")
    verts[7, 3, 1] = np.nan
    np.save(tmp_path / "data_verts.npy", verts)
    index = {TRAIN_SUBJECT: {"sentence01": {frame: frame for frame in range(30)}}}  # frame = row
    python2_pickle(index, tmp_path / "subj_seq_to_idx.pkl")
    with pytest.raises(MeshError, match=r"\[FaceTalk_170728_03272_TA_sentence01\]: vertices contain NaN or infinite "
                                        "values in 1 frame\\(s\\), first at frame 7"):
        open_dataset(tmp_path).load(f"{TRAIN_SUBJECT}_sentence01")


def test_vocaset_raw_audio_of_another_length_is_refused(tmp_path):
    write_vocaset_raw(tmp_path, {TRAIN_SUBJECT: {"sentence01": 30}}, vertex_count=10)
    long_audio = (np.sin(np.arange(22000 * 2) / 10) * 10000).astype(np.int16)  # 2 s against 0.5 s of mesh
    python2_pickle({TRAIN_SUBJECT: {"sentence01": {"audio": long_audio, "sample_rate": 22000}}},
                   tmp_path / "raw_audio_fixed.pkl")
    with pytest.raises(BackendError, match=r"audio lasts 2.00 s but the mesh sequence lasts 0.50 s "
                                           r"\(30 frames at 60 fps\); they must match within 0.50 s"):
        open_dataset(tmp_path).load(f"{TRAIN_SUBJECT}_sentence01")


def test_vocaset_raw_missing_audio_entry_and_silent_audio(tmp_path):
    write_vocaset_raw(tmp_path, {TRAIN_SUBJECT: {"sentence01": 30, "sentence02": 30}}, vertex_count=10)
    silent = np.zeros(11000, np.int16)
    python2_pickle({TRAIN_SUBJECT: {"sentence01": {"audio": silent, "sample_rate": 22000}}},
                   tmp_path / "raw_audio_fixed.pkl")
    dataset = open_dataset(tmp_path)
    with pytest.raises(AudioError, match=r"raw_audio_fixed.pkl: no entry \{'audio', 'sample_rate'\} "
                                         "for clip 'FaceTalk_170728_03272_TA_sentence02'"):
        dataset.load(f"{TRAIN_SUBJECT}_sentence02")
    with pytest.raises(AudioError, match=r"\[FaceTalk_170728_03272_TA_sentence01\]: audio is silent"):
        dataset.load(f"{TRAIN_SUBJECT}_sentence01")


def test_unknown_clip_id_is_refused(vocaset):
    root, _ = vocaset
    with pytest.raises(BackendError, match="no clip 'FaceTalk_170809_00138_TA_sentence40' in split 'train' "
                                           "in this vocaset dataset"):
        open_dataset(root, split="train").load(f"{TEST_SUBJECT}_sentence40")


# --- converted layout (VOCASET as FaceFormer ships it) ---------------------------------------------
@pytest.fixture
def converted(tmp_path):
    clips = {f"{TRAIN_SUBJECT}_sentence01": 30, f"{TRAIN_SUBJECT}_sentence03": 29,
             f"{TEST_SUBJECT}_sentence22": 31, f"{TEST_SUBJECT}_sentence02": 30}
    return tmp_path, write_converted(tmp_path, clips, fps=60, vertex_count=12)


def test_converted_parses_subjects_and_halves_the_frame_rate(converted):
    root, sequences = converted
    dataset = open_dataset(root)
    assert detect_kind(root) == "converted"
    assert dataset.clip_ids() == sorted(sequences)
    clip = dataset.load(f"{TRAIN_SUBJECT}_sentence03")
    assert (clip.subject, clip.sentence, clip.fps) == (TRAIN_SUBJECT, "sentence03", 30)
    np.testing.assert_array_equal(clip.vertices, sequences[f"{TRAIN_SUBJECT}_sentence03"][::2])
    assert clip.vertices.shape == (15, 12, 3) and clip.template.shape == (12, 3)
    assert clip.sample_rate == 16000 and clip.audio.dtype == np.float32
    assert open_dataset(root, split="test").clip_ids() == [f"{TEST_SUBJECT}_sentence22"]


def test_converted_lists_files_without_a_partner(converted):
    root, _ = converted
    (root / "wav" / f"{TEST_SUBJECT}_sentence02.wav").unlink()
    (root / "wav" / f"{TRAIN_SUBJECT}_sentence09.wav").write_bytes(b"")
    dataset = open_dataset(root)
    assert f"{TEST_SUBJECT}_sentence02" not in dataset.clip_ids() and len(dataset) == 3
    assert [path.name for path in dataset.unpaired] == [f"{TEST_SUBJECT}_sentence02.npy", f"{TRAIN_SUBJECT}_sentence09.wav"]


def test_converted_wrong_vertex_width_is_a_mesh_error(converted):
    root, _ = converted
    np.save(root / "vertices_npy" / f"{TRAIN_SUBJECT}_sentence01.npy", np.zeros((30, 35), np.float32))
    with pytest.raises(MeshError, match=r"FaceTalk_170728_03272_TA_sentence01.npy: vertex array has shape \(30, 35\); "
                                        r"expected \(frames, 36\) or \(frames, 12, 3\) to match the template"):
        open_dataset(root).load(f"{TRAIN_SUBJECT}_sentence01")


def test_converted_file_vanishing_after_open_is_reported_with_its_path(converted):
    root, _ = converted
    dataset = open_dataset(root)
    (root / "vertices_npy" / f"{TRAIN_SUBJECT}_sentence01.npy").unlink()
    with pytest.raises(MeshError, match=r"vertex file not found: .*vertices_npy/FaceTalk_170728_03272_TA_sentence01.npy"):
        dataset.load(f"{TRAIN_SUBJECT}_sentence01")


def test_converted_corrupt_vertex_file_is_a_mesh_error(converted):
    root, _ = converted
    (root / "vertices_npy" / f"{TRAIN_SUBJECT}_sentence01.npy").write_bytes(b"not numpy")
    with pytest.raises(MeshError, match="could not read the vertex array"):
        open_dataset(root).load(f"{TRAIN_SUBJECT}_sentence01")


def test_converted_template_problems(converted):
    root, _ = converted
    (root / "templates.pkl").write_bytes(pickle.dumps({TRAIN_SUBJECT: np.zeros((12, 2))}, protocol=2))
    dataset = open_dataset(root)
    with pytest.raises(BackendError, match=f"templates.pkl: no template for subject '{TEST_SUBJECT}'; "
                                           f"it has 1 subject\\(s\\): {TRAIN_SUBJECT}"):
        dataset.load(f"{TEST_SUBJECT}_sentence22")
    with pytest.raises(MeshError, match=r"template of subject 'FaceTalk_170728_03272_TA' is an array of shape "
                                        r"\(12, 2\); expected a \(V, 3\) array"):
        dataset.load(f"{TRAIN_SUBJECT}_sentence01")
    (root / "templates.pkl").write_bytes(pickle.dumps([1, 2], protocol=2))
    with pytest.raises(BackendError, match=r"templates.pkl: holds a list; expected a dict"):
        open_dataset(root).load(f"{TRAIN_SUBJECT}_sentence01")


def test_converted_template_with_nan_is_a_mesh_error(converted):
    root, _ = converted
    template = np.zeros((12, 3), np.float32)
    template[4, 0] = np.inf
    (root / "templates.pkl").write_bytes(pickle.dumps({TRAIN_SUBJECT: template}))
    with pytest.raises(MeshError, match="template of subject 'FaceTalk_170728_03272_TA' contains NaN or infinite"):
        open_dataset(root).load(f"{TRAIN_SUBJECT}_sentence01")


def test_converted_without_pairs_or_folders(tmp_path):
    (tmp_path / "vertices_npy").mkdir()
    with pytest.raises(BackendError, match=r"wav: folder not found; a converted dataset needs vertices_npy/, wav/ "
                                           "and templates.pkl under"):
        open_dataset(tmp_path)
    (tmp_path / "wav").mkdir()
    with pytest.raises(BackendError, match=r"no clip has both vertices_npy/<name>.npy and wav/<name>.wav "
                                           r"\(0 vertex files, 0 wav files\)"):
        open_dataset(tmp_path)


def test_converted_names_without_a_subject_are_refused(tmp_path):
    write_converted(tmp_path, {"nounderscore": 30}, fps=60, vertex_count=4)
    with pytest.raises(BackendError, match="1 file name\\(s\\) do not follow the converted naming "
                                           "<subject>_<sentence>, e.g. 'nounderscore'"):
        open_dataset(tmp_path)


# --- BIWI ---------------------------------------------------------------------------------------------
@pytest.fixture
def biwi(tmp_path):
    clips = {"F2_e01": 25, "F2_e33": 26, "M5_e38": 25, "F1_e37": 25}
    return tmp_path, write_converted(tmp_path, clips, fps=25, vertex_count=23)


def test_biwi_is_detected_and_read_at_25_fps_with_its_own_topology(biwi):
    root, sequences = biwi
    assert detect_kind(root) == "biwi"
    native = open_dataset(root, fps=None)
    assert native.kind == "biwi" and native.fps == 25
    clip = native.load("F2_e33")
    assert (clip.subject, clip.sentence, clip.fps) == ("F2", "e33", 25)
    np.testing.assert_array_equal(clip.vertices, sequences["F2_e33"])
    assert clip.template.shape == (23, 3)
    at_30 = open_dataset(root).load("F2_e33")  # 26 frames at 25 fps = 1.0 s -> 31 frames at 30 fps
    assert at_30.fps == 30 and at_30.vertices.shape == (31, 23, 3)
    np.testing.assert_allclose(at_30.vertices[6], sequences["F2_e33"][5], atol=1e-6)  # 0.2 s is a shared instant


def test_biwi_splits(biwi):
    root, _ = biwi
    assert open_dataset(root, split="train").clip_ids() == ["F2_e01"]
    assert open_dataset(root, split="val").clip_ids() == ["F2_e33"]
    assert open_dataset(root, split="test-a").clip_ids() == ["M5_e38"]
    assert open_dataset(root, split="test-b").clip_ids() == ["F1_e37"]
    with pytest.raises(BackendError, match="unknown split 'test' for a biwi dataset; known splits: "
                                           "train, val, test-a, test-b"):
        open_dataset(root, split="test")


def test_a_converted_name_forced_as_biwi_is_refused(converted):
    root, _ = converted
    with pytest.raises(BackendError, match=r"do not follow the biwi naming <F\|M><n>_e<NN> \(e.g. F2_e01\), "
                                           "e.g. 'FaceTalk_170728_03272_TA_sentence01'"):
        open_dataset(root, kind="biwi")


# --- MEAD-3D ------------------------------------------------------------------------------------------
def test_mead_names_give_subject_sentence_and_level(tmp_path):
    write_converted(tmp_path, {"M003_angry_level_1_001": 30, "M003_angry_level_3_001": 31,
                               "W009_happy_level_2_014": 30}, fps=30, vertex_count=8)
    assert detect_kind(tmp_path) == "mead"
    dataset = open_dataset(tmp_path)
    clips = {clip_id: dataset.load(clip_id) for clip_id in dataset.clip_ids()}
    summary = {clip_id: (clip.subject, clip.sentence, clip.level) for clip_id, clip in clips.items()}
    assert summary == {"M003_angry_level_1_001": ("M003", "angry_001", 1),
                       "M003_angry_level_3_001": ("M003", "angry_001", 3),
                       "W009_happy_level_2_014": ("W009", "happy_014", 2)}
    assert clips["M003_angry_level_3_001"].fps == 30 and len(clips["M003_angry_level_3_001"].vertices) == 31
    with pytest.raises(BackendError, match="unknown split 'train' for a mead dataset; known splits: none "
                                           "\\(this layout has no published split\\)"):
        open_dataset(tmp_path, split="train")


# --- our corpus -----------------------------------------------------------------------------------------
CORPUS_ENTRIES = [
    {"id": "spk00_s001_l1", "subject": "spk00", "sentence": "s001", "level": 1, "split": "train",
     "timeline": [[0.0, 0.2, "HH"], [0.2, 0.5, "AH"]], "source": "synthetic"},
    {"id": "spk00_s001_l3", "subject": "spk00", "sentence": "s001", "level": 3, "split": "train",
     "timeline": [[0.0, 0.25, "M"], [0.25, 0.5, "AA"]]},
    {"id": "spk01_s002_l2", "subject": "spk01", "sentence": "s002", "level": 2, "split": "test", "timeline": None},
]


def test_corpus_takes_everything_from_the_manifest(tmp_path):
    sequences = write_corpus(tmp_path, CORPUS_ENTRIES, fps=30, frames=15)
    assert detect_kind(tmp_path) == "corpus"
    dataset = open_dataset(tmp_path)
    assert dataset.clip_ids() == ["spk00_s001_l1", "spk00_s001_l3", "spk01_s002_l2"]
    clip = dataset.load("spk00_s001_l3")
    assert (clip.subject, clip.sentence, clip.level, clip.fps) == ("spk00", "s001", 3, 30)
    assert clip.timeline == [(0.0, 0.25, "M"), (0.25, 0.5, "AA")]
    np.testing.assert_array_equal(clip.vertices, sequences["spk00_s001_l3"])
    with np.load(tmp_path / "templates" / "spk00.npz") as archive:
        np.testing.assert_array_equal(clip.template, archive["vertices"])
    assert dataset.load("spk01_s002_l2").timeline is None
    assert open_dataset(tmp_path, split="test").clip_ids() == ["spk01_s002_l2"]
    with pytest.raises(BackendError, match="unknown split 'val' for a corpus dataset; known splits: test, train"):
        open_dataset(tmp_path, split="val")


def test_corpus_native_fps_comes_from_the_manifest(tmp_path):
    write_corpus(tmp_path, CORPUS_ENTRIES[:1], fps=60, frames=30)
    assert open_dataset(tmp_path, fps=None).load("spk00_s001_l1").vertices.shape[0] == 30
    assert open_dataset(tmp_path).load("spk00_s001_l1").vertices.shape[0] == 15


@pytest.mark.parametrize("manifest, message", [
    ("{not json", "manifest.json: not valid JSON"),
    (json.dumps({"clips": []}), r"manifest.json: 'fps' is None; expected a positive number"),
    (json.dumps({"fps": 30}), r"manifest.json: expected an object with a 'clips' list"),
    (json.dumps({"fps": 30, "clips": []}), r"manifest.json: lists no clips"),
    (json.dumps({"fps": 30, "clips": [{"id": "a", "sentence": "s"}]}),
     r"manifest.json: clip #0 lacks subject; every clip needs id, subject, sentence"),
])
def test_corpus_bad_manifests(tmp_path, manifest, message):
    write_corpus(tmp_path, CORPUS_ENTRIES[:1])
    (tmp_path / "manifest.json").write_text(manifest)
    with pytest.raises(BackendError, match=message):
        open_dataset(tmp_path, kind="corpus")


def test_corpus_bad_timeline_and_templates(tmp_path):
    entries = [dict(CORPUS_ENTRIES[0], timeline=[[0.3, 0.1, "AH"]]), dict(CORPUS_ENTRIES[2], timeline=[[0.1, "AH"]])]
    write_corpus(tmp_path, entries)
    dataset = open_dataset(tmp_path)
    with pytest.raises(BackendError, match=r"timeline of clip 'spk00_s001_l1' has an interval ending before it "
                                           r"starts: \(0.3, 0.1, 'AH'\)"):
        dataset.load("spk00_s001_l1")
    with pytest.raises(BackendError, match=r"timeline of clip 'spk01_s002_l2' is not a list of \[start_s, end_s, label\]"):
        dataset.load("spk01_s002_l2")
    np.savez(tmp_path / "templates" / "spk00.npz", verts=np.zeros((20, 3)))
    with pytest.raises(MeshError, match=r"spk00.npz: no array 'vertices'; it has verts"):
        dataset.load("spk00_s001_l1")
    (tmp_path / "templates" / "spk01.npz").unlink()
    with pytest.raises(MeshError, match=r"template file not found: .*templates/spk01.npz"):
        dataset.load("spk01_s002_l2")


# --- detection and splits ---------------------------------------------------------------------------
def test_unrecognised_folders_name_the_expected_layouts(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(BackendError, match=r"no known dataset layout found; expected one of: VOCASET raw "
                                           r"\(data_verts.npy, raw_audio_fixed.pkl, templates.pkl, subj_seq_to_idx.pkl\); "
                                           r"converted VOCASET, BIWI or MEAD-3D \(vertices_npy/, wav/, templates.pkl\); "
                                           r"our corpus \(manifest.json, wav/, templates/, controls_npy/ or vertices_npy/\)"):
        open_dataset(tmp_path)
    with pytest.raises(BackendError, match="dataset folder not found: .*absent"):
        open_dataset(tmp_path / "absent")
    with pytest.raises(BackendError, match="unknown dataset kind 'lrs3'; expected one of: vocaset, converted, "
                                           "biwi, mead, corpus"):
        open_dataset(tmp_path, kind="lrs3")


def test_published_split_tables():
    counts = {name: sum(len(subjects) * len(sentences) for subjects, sentences in rules)
              for name, rules in VOCASET_SPLITS.items()}
    assert counts == {"train": 320, "val": 40, "test": 40}
    assert split_of(VOCASET_SPLITS, VAL_SUBJECT, 20) is None and split_of(VOCASET_SPLITS, VAL_SUBJECT, 21) == "val"
    assert [split_of(BIWI_SPLITS, "M3", n) for n in (32, 33, 36, 37, 40, 41)] == ["train", "val", "val", "test-a", "test-a", None]
    assert split_of(BIWI_SPLITS, "M6", 37) == "test-b" and split_of(BIWI_SPLITS, "X1", 1) is None
