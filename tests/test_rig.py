"""The articulatory FLAME rig: fields derived from template + masks, sizes relative to the head, errors."""

import numpy as np
import pytest

from backend.errors import MeshError
from backend.flame import LOWER_LIP_CENTRE, UPPER_LIP_CENTRE, FlameRegions
from backend.mesh import load_flame_mesh
from backend.rig.flame_rig import CONTROLS, FlameRig


@pytest.fixture(scope="module")
def rig_inputs(flame_ply, flame_masks):
    mesh = load_flame_mesh(flame_ply)
    return mesh.vertices, mesh.faces, FlameRegions.load(flame_masks).masks


@pytest.fixture(scope="module")
def rig(rig_inputs):
    return FlameRig(*rig_inputs)


def _pose(**values):
    controls = np.zeros((1, len(CONTROLS)))
    for name, value in values.items():
        controls[0, CONTROLS.index(name)] = value
    return controls


def _gap(positions):
    return float(np.linalg.norm(positions[0, UPPER_LIP_CENTRE] - positions[0, LOWER_LIP_CENTRE]))


def test_rest_pose_is_the_template(rig, rig_inputs):
    assert np.allclose(rig.animate(_pose())[0], rig_inputs[0])
    assert _gap(rig.animate(_pose())) == pytest.approx(0.00237, abs=1e-5)


def test_jaw_opens_the_lower_face_only(rig, rig_inputs):
    opened = rig.animate(_pose(jaw=0.6))[0]
    moved = np.linalg.norm(opened - rig_inputs[0], axis=1)
    masks = rig_inputs[2]
    assert _gap(opened[None]) > 0.012
    assert moved[UPPER_LIP_CENTRE] < 1e-4
    for region in ("forehead", "left_eyeball", "right_eyeball", "nose"):
        assert moved[masks[region]].max() < 1e-4, region
    skull = masks["scalp"][rig_inputs[0][masks["scalp"], 1] > rig_inputs[0][masks["left_ear"], 1].max()]
    assert moved[skull].max() < 1e-4
    assert moved[rig.chin_vertex] > 0.01


def test_close_shuts_the_lips_and_labiodental_reaches_the_teeth(rig):
    assert _gap(rig.animate(_pose(close=1.0))) < 0.0005
    lower = rig.animate(_pose(labiodental=1.0))[0, LOWER_LIP_CENTRE]
    assert np.linalg.norm(lower - rig.teeth_point) < 0.0005


def test_rounding_narrows_and_spreading_widens_the_mouth(rig, rig_inputs):
    lips = np.unique(rig_inputs[2]["lips"])

    def width(positions):
        return np.ptp(positions[0, lips, 0])
    rest = width(rig.animate(_pose()))
    assert width(rig.animate(_pose(round=1.0))) < 0.8 * rest
    assert width(rig.animate(_pose(spread=1.0))) > 1.05 * rest


def test_blink_closes_the_eyes_and_brow_raises(rig, rig_inputs):
    blink = rig.animate(_pose(blink=1.0))[0] - rig_inputs[0]
    assert blink[:, 1].min() < -0.004
    assert rig.animate(_pose(brow=1.0))[0][rig_inputs[2]["forehead"], 1].mean() > rig_inputs[0][rig_inputs[2]["forehead"], 1].mean()


def test_offsets_scale_with_the_head(rig_inputs):
    template, faces, masks = rig_inputs
    small = FlameRig(template * 0.8, faces, masks)
    big = FlameRig(template, faces, masks)
    controls = np.array([[0.5, 0.3, 0.4, 0.2, 0.1, 0.5, 0.6]])
    assert np.allclose(small.animate(controls)[0], 0.8 * big.animate(controls)[0], atol=1e-9)


def test_subset_of_vertices_matches_full_animation(rig):
    controls = np.array([[0.7, 0.2, 0.5, 0.0, 0.3, 0.2, 0.1]] * 3)
    subset = [UPPER_LIP_CENTRE, LOWER_LIP_CENTRE, rig.chin_vertex]
    assert np.allclose(rig.animate(controls, subset), rig.animate(controls)[:, subset])


def test_bad_templates_are_refused(rig_inputs):
    template, faces, masks = rig_inputs
    with pytest.raises(MeshError, match=r"has shape \(100, 3\); expected a FLAME template of shape \(5023, 3\)"):
        FlameRig(template[:100], faces, masks)
    with pytest.raises(MeshError, match="ear centroids are 150.204 m apart; expected a head in metres"):
        FlameRig(template * 1000, faces, masks)
    with pytest.raises(MeshError, match="FLAME masks lack left_ear"):
        FlameRig(template, faces, {name: value for name, value in masks.items() if name != "left_ear"})


def test_lips_rest_inside_long_pauses_and_coarticulate_across_short_ones(rig):
    """Pauses >= 0.3 s bring every speech control to zero (the template: lips at rest) from 0.1 s inside their
    edges, and a run at the clip's start or end right up to it; a 0.2 s pause keeps coarticulating."""
    from backend.rig.coarticulation import (REST_FADE_S, SPEECH_CONTROLS, ArticulationStyle, control_curves,
                                            rest_weights)
    timeline = [(0.0, 0.5, "SIL"), (0.5, 0.6, "M"), (0.6, 0.8, "AA"), (0.8, 0.9, "P"), (0.9, 1.2, "SIL"),
                (1.2, 1.3, "SIL"), (1.3, 1.5, "AA"), (1.5, 1.7, "SIL"), (1.7, 1.9, "AE"), (1.9, 2.4, "SIL")]
    times = np.arange(72) / 30
    weights = rest_weights(timeline, times)
    long_pause = (times >= 0.9 + REST_FADE_S) & (times < 1.3 - REST_FADE_S)
    assert np.all(weights[long_pause] == 1.0) and np.all(weights[times < 0.5 - REST_FADE_S] == 1.0)
    assert np.all(weights[times >= 1.9 + REST_FADE_S] == 1.0)
    assert np.all(weights[(times >= 1.5) & (times < 1.7)] == 0.0)       # 0.2 s: too short to rest
    assert np.all(weights[(times >= 0.5) & (times < 0.9)] == 0.0)       # speech itself is never faded
    controls = control_curves(timeline, len(times), 30, rig, ArticulationStyle(gain=1.3), np.zeros(len(times)),
                              np.random.default_rng(0))
    speech = controls[:, [CONTROLS.index(name) for name in SPEECH_CONTROLS]]
    assert np.all(speech[weights == 1.0] == 0.0)
    assert np.abs(speech[(times >= 1.5) & (times < 1.7)]).max() > 0.1
