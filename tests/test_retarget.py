"""The ARKit-named shape-key basis on FLAME and the weight solver (backend.retarget): keys exist and move what their
names say, the solver keeps its bounds, finds the optimum (checked against scipy's L-BFGS-B), smooths and
sparsifies as asked, and a rig clip rebuilt from its weights passes the real-speech checks like the clip itself."""

import numpy as np
import pytest
from scipy.optimize import minimize

from backend.flame import LOWER_LIP_CENTRE, UPPER_LIP_CENTRE
from backend.heldout import is_heldout
from backend.metrics import phone_checks
from backend.metrics.mtm import lip_distance_curve
from backend.retarget.basis import KEY_NAMES, ShapeBasis
from backend.retarget.solver import Projector, SolverSettings, objective, solve_clip, solve_weights
from backend.rig.flame_rig import FlameRig
from backend.rig.timeline import read_lab


@pytest.fixture(scope="module")
def rig(flame_mesh, flame_masks):
    from backend.flame import FlameRegions
    return FlameRig(flame_mesh.vertices, flame_mesh.faces, FlameRegions.load(flame_masks).masks)


@pytest.fixture(scope="module")
def basis(rig):
    return ShapeBasis.build(rig)


def _gap(basis, name, weight=1.0):
    weights = np.zeros((1, len(basis.names)), np.float32)
    weights[0, basis.index(name)] = weight
    return float(lip_distance_curve(basis.rebuild(weights))[0])


def test_the_basis_has_the_arkit_mouth_jaw_blink_and_brow_keys_and_each_moves_the_face(basis):
    expected = {"jawOpen", "jawForward", "jawLeft", "jawRight", "mouthClose", "mouthFunnel", "mouthPucker",
                "mouthLeft", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
                "cheekPuff", "browInnerUp"} | {f"{stem}_{side}" for side in "LR" for stem in (
                    "mouthSmile", "mouthFrown", "mouthDimple", "mouthStretch", "mouthPress", "mouthLowerDown",
                    "mouthUpperUp", "eyeBlink", "browDown", "browOuterUp")}
    assert set(basis.names) == expected and len(basis.names) == len(KEY_NAMES) == 35
    assert basis.displacements.shape == (35, 5023, 3) and basis.displacements.dtype == np.float32
    peak_mm = np.linalg.norm(basis.displacements, axis=2).max(axis=1) * 1000
    assert np.all((peak_mm > 1.0) & (peak_mm < 30.0)), dict(zip(basis.names, peak_mm.round(1)))
    rest = _gap(basis, "jawOpen", 0.0)
    assert _gap(basis, "jawOpen") > rest + 0.010                      # the jaw opens the lips by > 1 cm
    assert _gap(basis, "mouthLowerDown_L", 1.0) > rest or _gap(basis, "mouthLowerDown_R", 1.0) > rest
    assert _gap(basis, "mouthClose", 0.4) < rest                     # the lips move towards each other
    chin_drop = basis.displacements[basis.index("jawOpen"), LOWER_LIP_CENTRE, 1]
    assert chin_drop < -0.01 and abs(basis.displacements[basis.index("jawOpen"), UPPER_LIP_CENTRE]).max() < 1e-4


def test_left_keys_move_the_subjects_left_and_pairs_add_up_to_the_symmetric_motion(basis, rig):
    x = basis.template[:, 0] - rig.mouth_centre[0]
    for stem in ("eyeBlink", "browOuterUp", "mouthSmile"):
        left = np.linalg.norm(basis.displacements[basis.index(f"{stem}_L")], axis=1)
        assert left[x > 0.01].sum() > 20 * left[x < -0.01].sum(), stem
    stretch = basis.displacements[basis.index("mouthStretch_L")] + basis.displacements[basis.index("mouthStretch_R")]
    np.testing.assert_allclose(stretch, rig.animate(np.eye(7)[[3]])[0] - rig.template, atol=1e-7)   # spread


def _smooth_sparse_weights(frames, keys, rng):
    weights = np.zeros((frames, keys))
    for key in rng.choice(keys, size=6, replace=False):
        weights[:, key] = np.clip(np.convolve(rng.uniform(-0.5, 1.2, frames), np.ones(5) / 5, "same"), 0, 1)
    return weights.astype(np.float32)


def test_solver_recovers_weights_the_clip_was_made_from_and_keeps_its_bounds(basis):
    rng = np.random.default_rng(0)
    truth = _smooth_sparse_weights(200, len(basis.names), rng)
    clip = basis.rebuild(truth)
    weights = solve_clip(clip, basis, SolverSettings(smoothness=0.0, sparsity=0.0, iterations=3000))
    assert weights.min() >= 0.0 and weights.max() <= 1.0
    error = np.abs(basis.rebuild(weights) - clip).max()
    assert error < 2e-4, error                                # the clip is rebuilt to within 0.2 mm
    noisy = clip + rng.normal(0, 0.002, clip.shape).astype(np.float32)   # noise pushes the unbounded fit outside
    bounded = solve_clip(noisy, basis)
    assert bounded.min() >= 0.0 and bounded.max() <= 1.0


def test_solver_reaches_the_optimum_a_general_bounded_optimiser_finds(basis):
    """Speed-independent correctness: the same objective minimised by scipy L-BFGS-B on a small problem."""
    rng = np.random.default_rng(1)
    clip = basis.rebuild(_smooth_sparse_weights(40, len(basis.names), rng))
    clip += rng.normal(0, 0.001, clip.shape).astype(np.float32)
    projector = Projector(basis)
    projections = projector.project(clip)
    settings = SolverSettings(smoothness=0.05, sparsity=0.01, iterations=3000)
    ours = solve_weights(projections, projector.gram, settings)
    shape = ours.shape
    scale = float(np.mean(np.diag(projector.gram)))

    def value_and_gradient(flat):
        w = flat.reshape(shape)
        change = np.diff(w, axis=0)
        smoothing = np.zeros_like(w)
        smoothing[:-1] -= change
        smoothing[1:] += change
        gradient = 2 * (w @ projector.gram - projections + settings.smoothness * scale * smoothing
                        + settings.sparsity * scale)
        return objective(w, projections, projector.gram, settings), gradient.ravel()

    reference = minimize(value_and_gradient, np.zeros(ours.size), jac=True, method="L-BFGS-B",
                         bounds=[(0.0, 1.0)] * ours.size, options={"maxiter": 20000, "ftol": 1e-15, "gtol": 1e-12})
    best = reference.fun
    assert objective(ours, projections, projector.gram, settings) <= best + 1e-6 * abs(best)


def test_smoothness_and_sparsity_do_what_they_say(basis):
    rng = np.random.default_rng(2)
    clip = basis.rebuild(_smooth_sparse_weights(120, len(basis.names), rng))
    clip += rng.normal(0, 0.002, clip.shape).astype(np.float32)
    variation = [np.abs(np.diff(solve_clip(clip, basis, SolverSettings(smoothness=value, sparsity=0.0)),
                                axis=0)).sum() for value in (0.0, 0.05, 0.5)]
    assert variation[0] > variation[1] > variation[2]
    active = [(solve_clip(clip, basis, SolverSettings(smoothness=0.0, sparsity=value)) > 1e-3).sum()
              for value in (0.0, 0.02, 0.2)]
    assert active[0] > active[1] > active[2]


def test_projections_of_blocks_equal_the_projection_of_the_whole_clip(basis):
    clip = basis.rebuild(_smooth_sparse_weights(90, len(basis.names), np.random.default_rng(3)))
    projector = Projector(basis)
    whole = projector.project(clip)
    np.testing.assert_allclose(np.concatenate([projector.project(clip[s:s + 25]) for s in range(0, 90, 25)]),
                               whole, rtol=1e-6, atol=1e-9)


def test_the_rig_rebuilt_from_its_weights_passes_the_real_speech_checks_within_5_points(rig, basis, speech_dir):
    """Held-out Kathleen labels drive the rig (closure 100 %, MTM 0 by construction); its rebuilt clip must stay
    within 5 points on closure and rest, and within 5 ms on MTM against the rig."""
    labels = [path for path in sorted(speech_dir.glob("*.phones.lab")) if is_heldout(path.name[:-len(".phones.lab")])]
    original, rebuilt = [], []
    for path in labels[:20]:
        timeline = read_lab(path)
        frames = int(timeline[-1][1] * 30)
        clip = phone_checks.rig_from_labels(rig, timeline, frames).astype(np.float32)
        reference = lip_distance_curve(clip)
        original.append(phone_checks.check_clip(clip, timeline, rig, reference_gap=reference))
        rebuilt.append(phone_checks.check_clip(basis.rebuild(solve_clip(clip, basis)), timeline, rig,
                                               reference_gap=reference))
    before, after = phone_checks.summarise(original), phone_checks.summarise(rebuilt)
    assert before["closure"] == 1.0 and before["pause_frames"] > 10
    assert abs(after["closure"] - before["closure"]) <= 0.05 and abs(after["rest"] - before["rest"]) <= 0.05
    assert after["mtm_ms"] <= 5.0 and after["lag_frames"] == 0


def test_thinned_keys_rebuild_every_frame_within_the_tolerance():
    from backend.retarget.curves import thin_linear
    rng = np.random.default_rng(4)
    values = np.clip(np.convolve(rng.uniform(-0.5, 1.2, 3000), np.ones(9) / 9, "same"), 0, 1)
    values[1000:1500] = 0.0                                   # a pause: two keys are enough
    kept = thin_linear(values, 0.01)
    assert kept[0] == 0 and kept[-1] == len(values) - 1
    assert np.abs(np.interp(np.arange(len(values)), kept, values[kept]) - values).max() <= 0.01
    assert len(kept) < 0.8 * len(values) and np.sum((kept > 1001) & (kept < 1499)) == 0


def test_animator_controls_scale_smooth_and_shift_the_weights():
    from backend.retarget.curves import adjust_weights
    names = ("jawOpen", "mouthClose", "eyeBlink_L")
    weights = np.zeros((90, 3), np.float32)
    weights[30:33] = 0.5
    gained = adjust_weights(weights, names, 30.0, mouth_gain=1.5, jaw_gain=0.5)
    assert gained[31].tolist() == pytest.approx([0.25, 0.75, 0.5])
    assert adjust_weights(weights * 3, names, 30.0).max() == 1.0          # bounds kept
    shifted = adjust_weights(weights, names, 30.0, shift_ms=100.0)          # 3 frames later
    np.testing.assert_allclose(shifted[33:36], weights[30:33], atol=1e-6)
    smoothed = adjust_weights(weights, names, 30.0, smoothing_ms=50.0)
    assert smoothed[:, 0].max() < 0.5 and smoothed[:, 0].sum() == pytest.approx(weights[:, 0].sum(), rel=1e-3)


def test_blinks_have_natural_rate_and_duration_and_are_seeded_and_brows_follow_loudness():
    from backend.retarget.life import blink_weights, brow_weights
    blinks = blink_weights(18000, 30.0, seed=3)                             # 10 minutes
    closing = np.flatnonzero((blinks[1:] > 0.5) & (blinks[:-1] <= 0.5))
    opening = np.flatnonzero((blinks[1:] <= 0.5) & (blinks[:-1] > 0.5))
    assert 8 <= len(closing) / 10 <= 25                                      # blinks a minute
    durations = (opening[:len(closing)] - closing[:len(opening)]) / 30.0    # time with the lid half shut or more
    assert np.all((durations > 0.05) & (durations < 0.4))
    assert np.array_equal(blink_weights(900, 30.0, seed=3), blinks[:900])
    assert not np.array_equal(blink_weights(900, 30.0, seed=4), blinks[:900])
    rate = 16000
    quiet_loud = np.concatenate([0.01 * np.ones(rate), 0.5 * np.ones(rate)]) * np.sin(np.arange(2 * rate) * 0.3)
    brows = brow_weights(quiet_loud, rate, 60, 30.0)
    assert brows[:20].max() == 0.0 and brows[40:].max() > 0.5
    assert brow_weights(np.zeros(rate), rate, 30, 30.0).max() == 0.0
