"""backend.metrics.phone_checks on constructed sequences: each check scores what it claims to (REFERENCE §8)."""

import numpy as np
import pytest

from backend.errors import AudioError, MetricError
from backend.flame import LOWER_LIP_CENTRE, UPPER_LIP_CENTRE, FlameRegions
from backend.mesh import load_flame_mesh
from backend.metrics import phone_checks
from backend.metrics.mtm import lip_distance_curve
from backend.rig.flame_rig import FlameRig

FPS = 30
# A constructed utterance (SYNTHETIC labels): pauses of 0.6 s and 0.2 s, three bilabials, /f v/, vowels of
# every openness class.
TIMELINE = [(0.0, 0.6, "SIL"), (0.6, 0.7, "M"), (0.7, 0.9, "AA"), (0.9, 1.0, "P"), (1.0, 1.15, "IY"),
            (1.15, 1.25, "F"), (1.25, 1.45, "AE"), (1.45, 1.55, "B"), (1.55, 1.7, "UW"), (1.7, 1.9, "SIL"),
            (1.9, 2.0, "V"), (2.0, 2.2, "EH"), (2.2, 2.3, "T"), (2.3, 2.5, "IH"), (2.5, 3.2, "SIL"),
            (3.2, 3.3, "S"), (3.3, 3.5, "AO"), (3.5, 3.6, "N"), (3.6, 4.2, "SIL")]
N_FRAMES = 126


@pytest.fixture(scope="module")
def rig(flame_ply, flame_masks):
    mesh = load_flame_mesh(flame_ply)
    return FlameRig(mesh.vertices, mesh.faces, FlameRegions.load(flame_masks).masks)


@pytest.fixture(scope="module")
def reference(rig):
    return phone_checks.rig_from_labels(rig, TIMELINE, N_FRAMES, FPS)


def _with_gap(rig, gaps_m):
    """Template frames whose lower-lip centre is moved away from the upper one to give the lip gaps `gaps_m` (T,)."""
    frames = np.repeat(rig.template[None], len(gaps_m), axis=0)
    direction = rig.template[LOWER_LIP_CENTRE] - rig.template[UPPER_LIP_CENTRE]
    direction /= np.linalg.norm(direction)
    frames[:, LOWER_LIP_CENTRE] = rig.template[UPPER_LIP_CENTRE] + np.asarray(gaps_m)[:, None] * direction
    return frames


def _shifted(frames, k):
    return np.concatenate([np.repeat(frames[:1], k, axis=0), frames[:-k]]) if k > 0 else frames


def test_rest_gap_is_the_template_lip_gap(rig):
    assert phone_checks.rest_gap(rig.template) * 1000 == pytest.approx(2.37, abs=0.01)


def test_rig_from_labels_scores_the_ceiling(rig, reference):
    checks = phone_checks.check_clip(reference, TIMELINE, rig, FPS)
    assert (checks.bilabials, checks.closure, checks.labiodentals, checks.contact) == (3, 1.0, 2, 1.0)
    assert checks.lag_frames == 0 and checks.mtm_ms == 0.0
    assert checks.openness_rho > 0.8 and checks.jaw_range_mm > 3


@pytest.mark.parametrize("k", [1, 2, 3])
def test_a_k_frame_shift_of_the_rig_gives_lag_k_and_mtm_k_frames(rig, reference, k):
    checks = phone_checks.check_clip(_shifted(reference, k), TIMELINE, rig, FPS)
    assert checks.lag_frames == k
    assert checks.mtm_ms == pytest.approx(k * 1000 / FPS)
    early = phone_checks.check_clip(reference[k:], TIMELINE, rig, FPS, lip_distance_curve(reference)[:-k])
    assert early.lag_frames == -k


def test_lips_shut_at_every_bilabial_give_full_closure_and_an_open_mouth_none(rig):
    times = np.arange(N_FRAMES) / FPS
    gaps = np.full(N_FRAMES, 0.008)
    for start, end, label in TIMELINE:
        if label in ("P", "B", "M"):
            gaps[int(np.argmin(np.abs(times - (start + end) / 2)))] = phone_checks.rest_gap(rig.template)
    assert phone_checks.check_clip(_with_gap(rig, gaps), TIMELINE, rig, FPS).closure == 1.0
    gaps[int(round(0.95 * FPS))] = 0.008          # the /p/ stays open
    assert phone_checks.check_clip(_with_gap(rig, gaps), TIMELINE, rig, FPS).closure == pytest.approx(2 / 3)
    static_open = phone_checks.check_clip(_with_gap(rig, np.full(N_FRAMES, 0.008)), TIMELINE, rig, FPS)
    assert static_open.closure == 0.0 and static_open.rest == 0.0 and static_open.contact == 0.0
    assert static_open.mid_bilabial_gap_mm == pytest.approx(8.0)
    assert static_open.lag_frames is None and static_open.mtm_ms is None and static_open.openness_rho is None
    assert static_open.jaw_range_mm == 0.0


def test_pauses_are_sil_runs_of_at_least_0_3_s_trimmed_by_0_1_s():
    frames = phone_checks.pause_frames(TIMELINE, N_FRAMES, FPS)
    # 0.1 <= t < 0.5, 2.6 <= t < 3.1, 3.7 <= t < 4.1 s; the 0.2 s pause at 1.7 s is too short
    assert frames.tolist() == list(range(3, 15)) + list(range(78, 93)) + list(range(111, 123))
    split = [(0.0, 0.2, "SIL"), (0.2, 0.45, "SIL"), (0.45, 0.6, "AA")]       # adjacent SIL entries join
    assert len(phone_checks.pause_frames(split, 18, FPS)) == 8      # 0.1 .. 0.35 s


def test_rest_counts_pause_frames_at_the_rest_gap(rig):
    gaps = np.full(N_FRAMES, 0.008)
    pauses = phone_checks.pause_frames(TIMELINE, N_FRAMES, FPS)
    gaps[pauses] = phone_checks.rest_gap(rig.template) + 0.0009
    assert phone_checks.check_clip(_with_gap(rig, gaps), TIMELINE, rig, FPS).rest == 1.0
    gaps[pauses[: len(pauses) // 4]] = 0.0040           # 1.6 mm above rest: open
    checks = phone_checks.check_clip(_with_gap(rig, gaps), TIMELINE, rig, FPS)
    assert checks.rest == pytest.approx(1 - (len(pauses) // 4) / len(pauses))


def test_openness_order_is_the_spearman_rho_of_mid_vowel_gaps(rig):
    times = np.arange(N_FRAMES) / FPS
    ordered, reversed_ = np.full(N_FRAMES, 0.003), np.full(N_FRAMES, 0.003)
    for start, end, label in TIMELINE:
        if label in phone_checks.OPENNESS_CLASS:
            middle = int(np.argmin(np.abs(times - (start + end) / 2)))
            ordered[middle] = 0.003 + 0.003 * phone_checks.OPENNESS_CLASS[label]
            reversed_[middle] = 0.015 - 0.003 * phone_checks.OPENNESS_CLASS[label]
    assert phone_checks.check_clip(_with_gap(rig, ordered), TIMELINE, rig, FPS).openness_rho == pytest.approx(1.0)
    assert phone_checks.check_clip(_with_gap(rig, reversed_), TIMELINE, rig, FPS).openness_rho == pytest.approx(-1.0)


def test_unlabelled_clips_find_pauses_from_the_audio_level(rig):
    rate = 16000
    audio = np.random.default_rng(0).standard_normal(3 * rate) * 0.1
    audio[rate: 2 * rate] *= 0.001                                     # a 1 s pause, 60 dB down
    frames = phone_checks.detected_pause_frames(audio, rate, 90, FPS)
    assert frames.min() == pytest.approx(1.1 * FPS, abs=1) and frames.max() == pytest.approx(1.9 * FPS, abs=1)
    result = phone_checks.check_unlabelled(_with_gap(rig, np.full(90, 0.008)), audio, rate, rig, FPS)
    assert result["rest"] == 0.0 and result["pause_frames"] == len(frames)


def test_summary_means_and_mtm_median(rig, reference):
    clips = [phone_checks.check_clip(_shifted(reference, k), TIMELINE, rig, FPS) for k in (0, 1, 3)]
    summary = phone_checks.summarise(clips)
    assert summary["clips"] == 3 and summary["bilabials"] == 9
    assert summary["mtm_median_ms"] == pytest.approx(1000 / FPS)
    assert summary["mtm_ms"] == pytest.approx(4 / 3 * 1000 / FPS)
    assert summary["lag_frames"] == pytest.approx(4 / 3)
    assert summary["closure"] == pytest.approx(np.mean([clip.closure for clip in clips]))


def test_bad_inputs_say_what_was_expected(rig, reference):
    with pytest.raises(MetricError, match="expected \\(T, 5023, 3\\)"):
        phone_checks.check_clip(reference[:, :100], TIMELINE, rig, FPS)
    with pytest.raises(AudioError, match="ARPAbet"):
        phone_checks.check_clip(reference, [(0.0, 1.0, "XX")], rig, FPS)
    seconds = len(reference) / FPS    # the labels of another, longer recording (they were ignored past the clip)
    with pytest.raises(MetricError, match=f"the phone labels run to {seconds + 10:.2f} s but the clip is "
                                          f"{seconds:.2f} s long; expected the labels of this recording"):
        phone_checks.check_clip(reference, [*TIMELINE, (TIMELINE[-1][1], seconds + 10, "SIL")], rig, FPS)


def test_score_adds_the_checks_for_one_clip_and_says_what_they_mean(rig, reference, flame_ply, flame_masks,
                                                                    tmp_path, capsys, monkeypatch):
    import json

    import soundfile

    from backend.cli import main
    monkeypatch.setattr("backend.metrics.plrs.default_models_dir", lambda *name: tmp_path / "no-models")   # no PLRS
    audio = np.random.default_rng(0).standard_normal(int(4.2 * 16000)).astype(np.float32) * 0.1
    soundfile.write(tmp_path / "a.wav", audio, 16000, subtype="PCM_16")
    (tmp_path / "a.phones.lab").write_text("".join(f"{start:.2f}\t{end:.2f}\t{label}\n"
                                                   for start, end, label in TIMELINE))
    np.save(tmp_path / "pred.npy", _shifted(reference, 2).astype(np.float32))
    code = main(["score", "--pred", str(tmp_path / "pred.npy"), "--audio", str(tmp_path / "a.wav"),
                 "--phones", str(tmp_path / "a.phones.lab"), "--template", str(flame_ply), "--masks",
                 str(flame_masks), "--json", str(tmp_path / "s.json")])
    out = capsys.readouterr().out
    assert code == 0 and "| lag_frames | 2 |" in out and "| closure |" in out and "people always close" in out
    checks = json.loads((tmp_path / "s.json").read_text())["phone_checks"]
    assert checks["mtm_ms"] == pytest.approx(66.67, abs=0.01) and checks["bilabials"] == 3
    (tmp_path / "bad.lab").write_text("0.0 0.5\n")
    code = main(["score", "--pred", str(tmp_path / "pred.npy"), "--audio", str(tmp_path / "a.wav"),
                 "--phones", str(tmp_path / "bad.lab"), "--template", str(flame_ply), "--masks", str(flame_masks)])
    assert code == 2 and "bad.lab:1: found 2 fields" in capsys.readouterr().err
    code = main(["score", "--pred-dir", str(tmp_path), "--data-dir", str(tmp_path), "--phones",
                 str(tmp_path / "a.phones.lab"), "--masks", str(flame_masks)])
    assert code == 2 and "--phones checks one clip" in capsys.readouterr().err
