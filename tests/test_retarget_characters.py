"""Driving any character (issue 17 item 3, backend part): key mappings and their presets (backend.retarget.mapping),
the surface binding that carries the basis onto a head of another topology (backend.retarget.binding), the
closure and pause checks on such a head, and the pitch-driven brows and head motion (backend.retarget.life)."""

import json

import numpy as np
import pytest

from backend.flame import FlameRegions
from backend.heldout import is_heldout
from backend.metrics import phone_checks
from backend.metrics.mtm import lip_distance_curve
from backend.retarget import life
from backend.retarget.basis import KEY_NAMES, ShapeBasis
from backend.retarget.binding import (_closest_barycentric, bind_to_surface, bound_lip_gap, lip_landmarks_on,
                                      transfer_fields)
from backend.retarget.mapping import (BUILTIN_PRESETS, KeyMapping, MappingError, MappingRow, best_builtin_for,
                                      load_preset, save_preset, user_presets)
from backend.retarget.solver import solve_clip
from backend.rig.flame_rig import FlameRig
from backend.rig.timeline import read_lab
from remeshed_head import remesh_by_clustering


def test_builtin_presets_cover_the_basis_and_never_drive_a_key_twice():
    arkit = BUILTIN_PRESETS["ARKit"]
    assert [row.target_key for row in arkit.rows] == list(KEY_NAMES) and not arkit.unmapped()
    long_names = BUILTIN_PRESETS["ARKit Left/Right (FaceIt-style)"]
    assert dict((row.basis_key, row.target_key) for row in long_names.rows)["mouthSmile_L"] == "mouthSmileLeft"
    cc4 = BUILTIN_PRESETS["Character Creator 4 Extended"]
    assert cc4.unmapped() == ("jawOpen",)                                  # a bone on CC4 characters
    assert [row.target_key for row in cc4.rows if row.basis_key == "browInnerUp"] == ["Brow_Raise_Inner_L",
                                                                                       "Brow_Raise_Inner_R"]
    assert BUILTIN_PRESETS["Custom (empty)"].unmapped() == KEY_NAMES
    for mapping in BUILTIN_PRESETS.values():
        mapping.check_rows()


def test_target_curves_apply_gains_and_one_to_many_rows():
    mapping = KeyMapping.from_pairs("mine", [("jawOpen", "Jaw", 0.5), ("browInnerUp", "BrowL"),
                                             ("browInnerUp", "BrowR", 2.0)])
    weights = np.zeros((4, len(KEY_NAMES)), np.float32)
    weights[:, KEY_NAMES.index("jawOpen")] = [0.0, 0.4, 0.8, 1.0]
    weights[:, KEY_NAMES.index("browInnerUp")] = 0.25
    names, curves = mapping.target_curves(weights)
    assert names == ("Jaw", "BrowL", "BrowR")
    np.testing.assert_allclose(curves, [[0, 0.25, 0.5], [0.2, 0.25, 0.5], [0.4, 0.25, 0.5], [0.5, 0.25, 0.5]])
    assert "mouthClose" in mapping.unmapped() and "jawOpen" not in mapping.unmapped()


@pytest.mark.parametrize("rows, target_keys, says", [
    ([("jawOpen", "Jaw"), ("mouthClose", "Jaw")], ["Jaw"], "driven by both 'jawOpen' and 'mouthClose'"),
    ([("jawOpen", "Jaw")], ["Basis", "jaw"], "has no shape key 'Jaw'"),
    ([("jawOpened", "Jaw")], ["Jaw"], "'jawOpened' is not a basis key"),
    ([("jawOpen", "Jaw", -1.0)], ["Jaw"], "outside 0..4"),
    ([("jawOpen", "")], ["Jaw"], "maps no basis key"),
])
def test_a_bad_mapping_is_one_line_that_says_what_is_wrong(rows, target_keys, says):
    with pytest.raises(MappingError) as error:
        KeyMapping.from_pairs("mine", rows).check(target_keys, "'Head'")
    assert says in str(error.value) and "\n" not in str(error.value)


def test_presets_round_trip_through_json_and_broken_files_are_named_not_fatal(tmp_path):
    mapping = KeyMapping.from_pairs("My rig/v2", [("jawOpen", "JawDrop", 1.3), ("eyeBlink_L", "")])
    path = save_preset(tmp_path / "presets", mapping)
    assert path.parent == tmp_path / "presets" and "/" not in path.name
    assert load_preset(path) == mapping
    (tmp_path / "presets" / "broken.json").write_text("{not json")
    (tmp_path / "presets" / "other.json").write_text(json.dumps({"format": "something else"}))
    presets, broken = user_presets(tmp_path / "presets")
    assert list(presets) == ["My rig/v2"] and sorted(name for name, _ in broken) == ["broken.json", "other.json"]
    with pytest.raises(MappingError, match="built-in"):
        save_preset(tmp_path, BUILTIN_PRESETS["ARKit"])
    before = path.read_bytes()
    with pytest.raises(MappingError):
        save_preset(tmp_path / "presets", KeyMapping("My rig/v2", (MappingRow("nope", "x"),)))
    assert path.read_bytes() == before                        # a refused save leaves the old file


def test_a_new_character_starts_from_the_preset_its_keys_match():
    keys = ["Basis", "eyeBlinkLeft", "eyeBlinkRight", "jawOpen", "mouthSmileLeft", "mouthClose"]
    mapping = best_builtin_for(keys)
    assert mapping.name == "ARKit Left/Right (FaceIt-style)"
    assert {row.target_key for row in mapping.mapped_rows} == set(keys) - {"Basis"}
    mapping.check(keys)
    assert best_builtin_for(["Basis", "something"]).name == "ARKit"


def test_closest_points_match_brute_force_on_random_triangles():
    rng = np.random.default_rng(0)
    vertices = rng.normal(size=(30, 3))
    faces = rng.integers(0, 30, size=(40, 3))
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    points = rng.normal(size=(200, 3)) * 1.5
    binding = bind_to_surface(points, vertices, faces)
    corners = vertices[faces]
    dense = rng.dirichlet(np.ones(3), size=500)                         # points inside every triangle
    samples = np.einsum("sj,fjd->fsd", dense, corners).reshape(-1, 3)
    brute = np.linalg.norm(points[:, None] - samples[None], axis=2).min(axis=1)
    assert np.all(binding.distances <= brute + 1e-12)                   # never farther than any surface sample
    exact = []
    for point in points:                                                # and the exact minimum over all faces
        bary = _closest_barycentric(np.broadcast_to(point, (len(faces), 3)), *corners.transpose(1, 0, 2))
        exact.append(np.linalg.norm(np.einsum("fj,fjd->fd", bary, corners) - point, axis=1).min())
    np.testing.assert_allclose(binding.distances, exact, atol=1e-12)
    assert np.all(binding.weights >= -1e-12) and np.allclose(binding.weights.sum(axis=1), 1.0)


@pytest.fixture(scope="module")
def flame(flame_mesh, flame_masks):
    rig = FlameRig(flame_mesh.vertices, flame_mesh.faces, FlameRegions.load(flame_masks).masks)
    return rig, ShapeBasis.build(rig)


@pytest.fixture(scope="module")
def remeshed(flame_mesh):
    return remesh_by_clustering(flame_mesh.vertices, flame_mesh.faces)


def test_the_remeshed_head_is_another_topology_and_the_basis_transfers_onto_it(flame, remeshed, flame_mesh):
    rig, basis = flame
    vertices, faces = remeshed
    assert len(vertices) < 0.5 * 5023 and len(faces) < 0.5 * 9976
    keys = transfer_fields(basis.displacements, flame_mesh.vertices, flame_mesh.faces, vertices)
    assert keys.shape == (35, len(vertices), 3)
    # a target vertex lying on a FLAME vertex moves exactly like it
    binding = bind_to_surface(vertices, flame_mesh.vertices, flame_mesh.faces)
    on_vertex = np.flatnonzero(binding.weights.max(axis=1) > 1 - 1e-9)
    source = flame_mesh.faces[binding.triangles[on_vertex], np.argmax(binding.weights[on_vertex], axis=1)]
    np.testing.assert_allclose(keys[:, on_vertex], basis.displacements[:, source], atol=1e-7)
    jaw = np.linalg.norm(keys[KEY_NAMES.index("jawOpen")], axis=1)
    assert jaw.max() > 0.01                                             # the jaw opens the remeshed head too


def test_the_remeshed_head_passes_closure_and_pause_checks_within_5_points_of_flame(flame, remeshed, flame_mesh,
                                                                                   speech_dir):
    """Held-out Kathleen labels drive the rig; its solved weights play on FLAME and on the remeshed head (the
    transferred keys); the lip gap on the head is measured between the lip landmarks bound to its surface."""
    rig, basis = flame
    vertices, faces = remeshed
    keys = transfer_fields(basis.displacements, flame_mesh.vertices, flame_mesh.faces, vertices)
    landmarks = lip_landmarks_on(flame_mesh.vertices, vertices, faces)
    head_rest_gap = float(bound_lip_gap(landmarks, vertices[None])[0])
    assert 0.001 < head_rest_gap < 0.006
    labels = [path for path in sorted(speech_dir.glob("*.phones.lab")) if is_heldout(path.name[:-len(".phones.lab")])]
    on_flame, on_head = [], []
    for path in labels[:20]:
        timeline = read_lab(path)
        weights = solve_clip(phone_checks.rig_from_labels(rig, timeline, int(timeline[-1][1] * 30)), basis)
        on_flame.append(phone_checks.closure_and_rest(lip_distance_curve(basis.rebuild(weights)),
                                                      phone_checks.rest_gap(flame_mesh.vertices), timeline))
        frames = vertices[None].astype(np.float32) + np.einsum("tk,knd->tnd", weights, keys)
        on_head.append(phone_checks.closure_and_rest(bound_lip_gap(landmarks, frames), head_rest_gap, timeline))
    flame_summary, head_summary = phone_checks.summarise(on_flame), phone_checks.summarise(on_head)
    assert flame_summary["bilabials"] >= 15 and flame_summary["pause_frames"] > 10
    assert abs(head_summary["closure"] - flame_summary["closure"]) <= 0.05
    assert abs(head_summary["rest"] - flame_summary["rest"]) <= 0.05


def _tone(frequencies_hz, rate=16000, seconds_each=1.0):
    phase = np.cumsum(np.repeat(frequencies_hz, int(rate * seconds_each))) / rate
    return 0.3 * np.sin(2 * np.pi * phase), rate


def test_pitch_track_finds_f0_without_octave_errors_and_silence_is_unvoiced():
    samples, rate = _tone([120.0, 200.0, 310.0])
    samples = np.concatenate([samples, np.zeros(rate)])
    f0 = life.pitch_track(samples, rate, 120, 30.0)
    for second, expected in enumerate((120.0, 200.0, 310.0)):
        np.testing.assert_allclose(f0[second * 30 + 5:second * 30 + 25], expected, rtol=0.02)
    assert np.all(f0[95:] == 0.0)
    stereo_rate = life.pitch_track(*_tone([150.0], rate=44100), 30, 30.0)   # other rates are resampled
    np.testing.assert_allclose(stereo_rate[5:25], 150.0, rtol=0.02)


def test_pitch_brows_rise_with_the_voice_and_stay_down_on_a_monotone():
    rising, rate = _tone([150.0, 150.0, 150.0, 260.0])
    brows = life.pitch_brow_weights(rising, rate, 120, 30.0)
    assert brows[:80].max() < 0.05 and brows[95:115].min() > 0.3
    assert life.pitch_brow_weights(*_tone([150.0] * 4), 120, 30.0).max() < 0.05
    assert life.pitch_brow_weights(np.zeros(16000), 16000, 30, 30.0).max() == 0.0


def test_head_motion_is_small_seeded_and_follows_loudness():
    rate = 16000
    quiet_loud = np.concatenate([0.01 * np.ones(5 * rate), 0.5 * np.ones(5 * rate)]) * np.sin(np.arange(10 * rate))
    angles = life.head_rotation_angles(quiet_loud, rate, 300, 30.0, seed=1)
    degrees = np.degrees(angles)
    assert angles.shape == (300, 3) and np.abs(degrees).max() < 8.0
    assert np.abs(degrees[180:]).std() > 1.5 * np.abs(degrees[:120]).std()     # livelier while loud
    np.testing.assert_array_equal(life.head_rotation_angles(quiet_loud, rate, 300, 30.0, seed=1), angles)
    assert not np.array_equal(life.head_rotation_angles(quiet_loud, rate, 300, 30.0, seed=2), angles)


def test_head_motion_eulers_turn_an_object_about_its_own_axes():
    angles = np.radians([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, -2.0, 0.5]])
    np.testing.assert_allclose(life.head_motion_eulers(angles, np.eye(3)), angles, atol=1e-12)
    # an object lying z-up (a FLAME head imported into Blender and stood up: local y is world z) with a
    # mesh whose local axes are the FLAME axes: the rest rotation is kept and the nod added about local x
    stand_up = life.rotation_matrices(np.radians([[90.0, 0.0, 0.0]]))[0]
    eulers = life.head_motion_eulers(angles[:1], stand_up)
    np.testing.assert_allclose(np.degrees(eulers[0]), [93.0, 0.0, 0.0], atol=1e-9)
    swapped = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])   # local -> FLAME, mirrored
    turned = life.rotation_matrices(life.head_motion_eulers(angles, np.eye(3), swapped))
    np.testing.assert_allclose(swapped @ turned @ swapped.T, life.rotation_matrices(angles), atol=1e-12)
