"""The lip closure guard (backend.closure_guard): shut where /p b m/ was heard, nothing else, never open."""

import numpy as np
import pytest

from backend.closure_guard import (DEFAULT_SETTINGS, INNER_RADIUS_M, OUTER_RADIUS_M, TARGET_M, ClosureGuard,
                                   GuardSettings, closure_weights)
from backend.flame import LOWER_LIP_CENTRE, UPPER_LIP_CENTRE
from backend.frame_rate import MESH_FPS
from backend.speech_frontend import BILABIAL_DELAY_S, FRAME_RATE, POSTERIOR_DIM, bilabial_columns


def posteriors(frames50: int, bilabial_at=(), mass: float = 0.99) -> np.ndarray:
    """(frames50, 191) log-posteriors: blank everywhere, a /p/ spike of `mass` at the given 50 Hz frames."""
    probabilities = np.full((frames50, POSTERIOR_DIM), 1e-6, dtype=np.float64)
    probabilities[:, -1] = 1.0
    for frame in bilabial_at:
        probabilities[frame, -1] = 1.0 - mass
        probabilities[frame, bilabial_columns()[0]] = mass
    return np.log(probabilities / probabilities.sum(axis=1, keepdims=True)).astype(np.float32)


def test_weights_are_one_around_a_heard_bilabial_and_zero_elsewhere():
    spike = 50   # 1.0 s
    weights = closure_weights(posteriors(150, [spike]), 90)
    centre = spike / FRAME_RATE - BILABIAL_DELAY_S
    times = np.arange(90) / MESH_FPS
    inside = (times >= centre - DEFAULT_SETTINGS.before_s) & (times <= centre + DEFAULT_SETTINGS.after_s)
    assert inside.any() and np.all(weights[inside] == 1.0)
    far = np.abs(times - centre) > 0.2
    assert np.all(weights[far] == 0.0) and np.all((weights >= 0) & (weights <= 1))
    ramp = (times > centre + DEFAULT_SETTINGS.after_s) & (times < centre + DEFAULT_SETTINGS.after_s
                                                          + DEFAULT_SETTINGS.ramp_s)
    assert np.all((weights[ramp] > 0) & (weights[ramp] < 1))


def test_nothing_heard_or_below_threshold_gives_no_weight():
    assert not closure_weights(posteriors(100), 60).any()
    quiet = posteriors(100, [40], mass=0.2)
    assert not closure_weights(quiet, 60, GuardSettings(threshold=0.3)).any()
    assert closure_weights(quiet, 60, GuardSettings(threshold=0.1)).any()
    with pytest.raises(ValueError, match="expected"):
        closure_weights(np.zeros((10, 5)), 6)


def open_mouth(template: np.ndarray, frames: int, opening_m: float) -> np.ndarray:
    """(frames, 5023, 3): the lower lip region lowered by `opening_m` (what an open generator frame looks like)."""
    below = np.linalg.norm(template - template[LOWER_LIP_CENTRE], axis=1) < 0.02
    below &= template[:, 1] <= template[LOWER_LIP_CENTRE, 1] + 1e-4
    clip = np.repeat(template[None], frames, axis=0).astype(np.float32)
    clip[:, below, 1] -= opening_m
    return clip


def gap(vertices) -> np.ndarray:
    return np.linalg.norm(vertices[:, UPPER_LIP_CENTRE] - vertices[:, LOWER_LIP_CENTRE], axis=1)


def test_guard_shuts_open_lips_where_asked_and_leaves_the_rest(flame_mesh):
    template = flame_mesh.vertices.astype(np.float32)
    guard = ClosureGuard(template)
    clip = open_mouth(template, 4, 0.005)
    clip[3] = template                      # an already closed frame
    before = clip.copy()
    weights = np.array([1.0, 0.5, 0.0, 1.0], dtype=np.float32)
    guard.apply(clip, weights)
    rest = gap(template[None])[0]
    after = gap(clip)
    assert after[0] == pytest.approx(rest + TARGET_M, abs=0.0003)       # shut, not pressed
    assert gap(before)[1] > after[1] > after[0]                        # half weight: part way
    np.testing.assert_array_equal(clip[2], before[2])                  # no weight: untouched
    np.testing.assert_array_equal(clip[3], before[3])                  # already closed: untouched
    far = np.linalg.norm(template - (template[UPPER_LIP_CENTRE] + template[LOWER_LIP_CENTRE]) / 2, axis=1)
    np.testing.assert_array_equal(clip[:, far >= OUTER_RADIUS_M], before[:, far >= OUTER_RADIUS_M])
    assert np.all(np.linalg.norm(clip - before, axis=2)[:, far < INNER_RADIUS_M].max(axis=1)[[0, 1]] > 0)
    with pytest.raises(ValueError, match="closure weights"):
        guard.apply(clip, weights[:2])


def test_a_shipped_generator_with_the_guard_only_ever_closes(flame_mesh, speech_dir):
    from backend.audio import load_audio
    from backend.generators import load_generator, speech_frontend_features
    path = sorted(speech_dir.glob("arctic_a00*.flac"))[0]
    audio, rate = load_audio(path, 16_000)
    generator = load_generator("selftalk_v2")
    template = flame_mesh.vertices
    features = speech_frontend_features(audio, rate)
    guarded = generator.animate(audio, rate, template)
    plain = generator.animate(audio, rate, template, lip_closure=False)
    from backend.bilabial_detector import load_detector
    detector = load_detector()
    weights = closure_weights(features[:, :POSTERIOR_DIM], len(plain), bilabial=detector.probabilities(audio, rate))
    assert weights.any()
    changed = np.abs(guarded - plain).max(axis=(1, 2)) > 0
    assert not np.any(changed & (weights == 0))                        # only where a bilabial was heard
    assert np.all(gap(guarded) <= gap(plain) + 1e-6)                   # never opens
    streamed = generator.animate_blocks(audio, rate, template, frontend_features=features)
    frames = next(streamed)
    joined = np.concatenate([block for _, block in streamed])
    assert len(joined) == frames and np.allclose(joined, guarded, atol=1e-6)


def test_the_settings_benchmark_tunes_on_training_prompts_only(tmp_path, flame_masks, speech_dir):
    import importlib.util
    import json
    from backend.heldout import is_heldout
    from conftest import REPO
    spec = importlib.util.spec_from_file_location("closure_guard_bench", REPO / "benchmarks" / "closure_guard.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    shared = speech_dir.parents[1]
    everything = bench.tuning_names(shared, 10_000)
    assert len(everything) > 1000 and not any(is_heldout(name) for name in everything)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"clips": [{"sentences": everything[:2]}, {"sentence": everything[2]}]}))
    left = bench.tuning_names(shared, 10_000, manifest)
    assert len(left) == len(everything) - 3 and not set(everything[:3]) & set(left)
    assert bench.main(["--clips", "2", "--models", "selftalk_v2", "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "closure_guard.json").read_text())
    detector_variants = 1 + 2 * (len(bench.DETECTOR_THRESHOLDS) - 1)   # off; each threshold as union and gap filler
    assert len(report["clips"]) == 6 and len(report["rows"]) == 1 + detector_variants * len(bench.GRID["threshold"]) * \
        len(bench.GRID["before_s"]) * len(bench.GRID["after_s"]) * len(bench.GRID["ramp_s"])
    assert len({row["setting"]["detector_threshold"] for row in report["rows"] if row["setting"]}) == \
        len(bench.DETECTOR_THRESHOLDS)
    assert "| guard off |" in (tmp_path / "out" / "closure_guard.md").read_text()
    takes = [name for name in report["clips"] if "+" not in name]
    assert sorted(report["clips"]) == sorted(takes + [f"{name}+{kind}" for name in takes for kind in ("noise", "room")])
    clean = [bench.Utterance("take", np.sin(np.arange(16000) / 5.0).astype(np.float32), 16000, [(0.0, 1.0, "AA")])]
    first, again = bench.listening_copies(clean), bench.listening_copies(clean)
    assert [u.name for u in first] == ["take", "take+noise", "take+room"]
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(first, again))      # the same draws every run
    assert all(u.timeline == clean[0].timeline and np.abs(u.audio).max() <= 0.99 + 1e-6 for u in first[1:])
    assert all(not np.allclose(u.audio, clean[0].audio, atol=1e-3) for u in first[1:])
    if not (shared / "speech" / "dev").is_dir():
        pytest.skip(f"{shared / 'speech' / 'dev'} is absent")
    counts = bench.heard_bilabials(shared)
    labelled = {tally["labelled"] for tally in counts.values()}
    assert len(labelled) == 1 and labelled.pop() > 20           # every condition: the same labelled /p b m/
    for tally in counts.values():
        assert max(tally["front end"], tally["detector"]) <= tally["either"] <= tally["labelled"]
    assert counts["noise_10db"]["front end"] <= counts["clean"]["front end"]
