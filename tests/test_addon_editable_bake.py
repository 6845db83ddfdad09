"""The editable bake (issue 17 item 4, the default): the shape-key basis as relative keys on the add-on's mesh copy,
driven by thinned F-curves of an add-on-owned Action in an NLA strip; the artist's own relative shape keys (and
their animation) keep acting while it is attached (issue 16 item 4); Remove leaves the artist's keys and actions;
the exact per-frame bake stays available. pip bpy 4.5 here; the same checks run in pip bpy 5.2 through
tests/blender_install_check.py (test_addon_install.py). The template preference points at ../shared's
FLAME_sample.ply, whose FLAME_masks.npz the basis is built from."""

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.blender

bpy = pytest.importorskip("bpy")

from test_addon import (SAMPLE_WAV, _job, baked_keys, blender, evaluated, head, models,  # noqa: F401,E402
                        run_animate, scene_snapshot, set_fps)

from backend.audio import load_audio  # noqa: E402
from backend.generators import DEFAULT_GENERATOR, load_generator  # noqa: E402

from backend.flame import FlameRegions, LOWER_LIP_CENTRE  # noqa: E402
from backend.mesh import load_flame_mesh  # noqa: E402
from backend.metrics.mtm import lip_distance_curve  # noqa: E402
from backend.retarget.basis import KEY_NAMES, ShapeBasis  # noqa: E402
from backend.retarget.solver import solve_clip  # noqa: E402
from backend.rig.flame_rig import FlameRig  # noqa: E402
from blender_addon import bake, pipeline, properties  # noqa: E402

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "generators"
SMILE_VERTEX = 3000      # any vertex: the artist's key moves it 1 cm forward
SMILE_VALUE = 0.7


@pytest.fixture
def editable(head, blender, flame_ply, flame_masks):
    """The head with the shipped default generator (the test graph moves one vertex, which no basis key can) and
    the template preference set."""
    if not (SHIPPED / DEFAULT_GENERATOR).is_dir():
        pytest.skip("the shipped generators are absent")
    blender.models_dir = str(SHIPPED.parent)
    bpy.context.scene.talking_head.generator = DEFAULT_GENERATOR
    blender.template_path = str(flame_ply)   # FLAME_masks.npz lies beside it
    assert bpy.context.scene.talking_head.bake == properties.BAKE_EDITABLE   # the default
    set_fps(30)
    return head


def shipped_clip(flame_ply) -> np.ndarray:
    samples, rate = load_audio(SAMPLE_WAV)
    template = load_flame_mesh(flame_ply).vertices.astype(np.float32)
    return load_generator(DEFAULT_GENERATOR, SHIPPED).animate(samples, rate, template)


def _add_artist_smile(obj, animated: bool = False):
    obj.shape_key_add(name="Basis", from_mix=False)
    smile = obj.shape_key_add(name="smile", from_mix=False)
    smile.data[SMILE_VERTEX].co.z += 0.01
    smile.value = SMILE_VALUE
    if animated:
        smile.value = 0.0
        smile.keyframe_insert("value", frame=1)
        smile.value = 1.0
        smile.keyframe_insert("value", frame=41)
    return obj.data.shape_keys.animation_data.action if animated else None


def _strip(obj):
    track = obj.data.shape_keys.animation_data.nla_tracks[bake.NLA_TRACK]
    (strip,) = track.strips
    return strip


def _curves(action):
    if hasattr(action, "layers"):
        return list(action.layers[0].strips[0].channelbags[0].fcurves)
    return list(action.fcurves)


def test_editable_bake_is_relative_basis_keys_driven_by_an_nla_strip_of_an_owned_action(editable):
    assert run_animate() == {"FINISHED"}
    props = editable.talking_head
    key = editable.data.shape_keys
    assert editable.data == props.baked_mesh and key.use_relative
    assert [block.name for block in key.key_blocks] == ["Basis", *KEY_NAMES]
    strip = _strip(editable)
    assert strip.action == props.action and props.action.get(bake.OWNER) == editable
    assert strip.frame_start == bpy.context.scene.frame_start
    assert key.animation_data.action is None                 # nothing but the strip: the animator's slot is free
    curves = _curves(props.action)
    assert sorted(curve.data_path for curve in curves) == sorted(f'key_blocks["{name}"].value' for name in KEY_NAMES)
    frames = props.frame_end_set - bpy.context.scene.frame_start + 1
    counts = [len(curve.keyframe_points) for curve in curves]
    assert max(counts) <= frames and sum(counts) < 0.5 * frames * len(curves)   # thinned
    jaw = key.key_blocks["jawOpen"]
    rest = bake.mesh_vertices(props.original_mesh)
    offset = bake._block_vertices(jaw) - rest
    assert offset[LOWER_LIP_CENTRE, 1] < -0.01                # the jawOpen key opens the mouth by > 1 cm


def test_the_editable_bake_plays_the_clip_rebuilt_from_its_solved_weights(editable, flame_ply, flame_masks):
    run_animate()
    template = load_flame_mesh(flame_ply)
    basis = ShapeBasis.build(FlameRig(template.vertices, template.faces, FlameRegions.load(flame_masks).masks))
    expected = basis.rebuild(solve_clip(shipped_clip(flame_ply), basis))
    start = bpy.context.scene.frame_start
    played = np.stack([evaluated(editable, start + frame) for frame in range(len(expected))])
    # F-curves thinned to 0.01 of a key: the lip gap within 0.5 mm of the solved clip at every frame
    np.testing.assert_allclose(lip_distance_curve(played), lip_distance_curve(expected), atol=5e-4)
    assert np.ptp(lip_distance_curve(played)) > 0.002          # and the lips move by millimetres


def test_the_artists_own_relative_shape_key_keeps_acting_while_lip_sync_is_attached(editable):
    """Issue 16 item 4: a smile at 0.7 acts on top of the lip sync (depsgraph evaluation)."""
    _add_artist_smile(editable)
    assert run_animate() == {"FINISHED"}
    frame = bpy.context.scene.frame_start + 30
    with_smile = evaluated(editable, frame)
    editable.data.shape_keys.key_blocks["smile"].mute = True
    without_smile = evaluated(editable, frame)
    editable.data.shape_keys.key_blocks["smile"].mute = False
    change = with_smile - without_smile
    assert change[SMILE_VERTEX, 2] == pytest.approx(SMILE_VALUE * 0.01, abs=1e-6)
    assert np.abs(np.delete(change, SMILE_VERTEX, axis=0)).max() < 1e-7
    assert np.abs(without_smile - bake.mesh_vertices(editable.talking_head.original_mesh)).max() > 1e-3  # lips move


def test_the_artists_shape_key_animation_keeps_playing_and_remove_leaves_their_keys_and_action(editable):
    artist_action = _add_artist_smile(editable, animated=True)
    before = scene_snapshot()
    assert run_animate() == {"FINISHED"}
    key = editable.data.shape_keys
    assert key.animation_data.action == artist_action          # the artist's action still drives their key
    for frame, value in ((1, 0.0), (21, 0.5), (41, 1.0)):
        bpy.context.scene.frame_set(frame)
        assert key.key_blocks["smile"].value == pytest.approx(value, abs=1e-5)
    bpy.context.scene.frame_set(1)
    assert bpy.ops.talking_head.remove() == {"FINISHED"}
    assert scene_snapshot() == before
    original = editable.data.shape_keys
    assert [block.name for block in original.key_blocks] == ["Basis", "smile"]
    assert original.animation_data.action == artist_action and artist_action.name in bpy.data.actions
    assert not original.animation_data.nla_tracks


def test_changes_to_the_artists_keys_on_the_animated_head_are_kept_by_remove(editable):
    _add_artist_smile(editable)
    run_animate()
    smile = editable.data.shape_keys.key_blocks["smile"]
    smile.value = 0.4
    smile.data[SMILE_VERTEX].co.z += 0.005
    frown = editable.shape_key_add(name="frown", from_mix=False)   # a key the artist adds while animated
    frown.data[10].co.y -= 0.01
    bpy.ops.talking_head.remove()
    blocks = editable.data.shape_keys.key_blocks
    assert [block.name for block in blocks] == ["Basis", "smile", "frown"]
    assert blocks["smile"].value == pytest.approx(0.4)
    rest = bake.mesh_vertices(editable.data)
    assert bake._block_vertices(blocks["smile"])[SMILE_VERTEX, 2] == pytest.approx(rest[SMILE_VERTEX, 2] + 0.015,
                                                                                    abs=1e-6)
    assert bake._block_vertices(blocks["frown"])[10, 1] == pytest.approx(rest[10, 1] - 0.01, abs=1e-6)


def test_animating_again_and_save_reload_keep_one_strip_and_playback(editable, tmp_path):
    run_animate()
    first = scene_snapshot()
    start = bpy.context.scene.frame_start
    shown = evaluated(editable, start + 20)
    bpy.context.scene.frame_set(start)
    run_animate()
    assert scene_snapshot() == first
    path = tmp_path / "editable.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    reloaded = bpy.data.objects["Head"]
    assert _strip(reloaded).action == reloaded.talking_head.action
    np.testing.assert_allclose(evaluated(reloaded, start + 20), shown, atol=1e-7)


def test_the_exact_per_frame_bake_is_still_an_option(editable, flame_ply):
    bpy.context.scene.talking_head.bake = properties.BAKE_PER_FRAME
    run_animate()
    np.testing.assert_array_equal(baked_keys(editable), shipped_clip(flame_ply))
    assert not editable.data.shape_keys.use_relative


def test_without_flame_masks_the_editable_bake_falls_back_to_per_frame_and_says_why(head, blender):
    set_fps(30)
    job = _job()
    assert job.run_here(bpy.context) == "finished"
    assert pipeline.NO_MASKS_NOTE in job.result.warnings and job.result.basis is None
    assert not head.data.shape_keys.use_relative


def test_cancel_during_the_editable_bake_leaves_the_scene_unchanged(editable):
    _add_artist_smile(editable)
    before = scene_snapshot()
    job = _job()
    job.start_thread()
    job.wait()
    assert job.tick(bpy.context) == "baking"
    job.tick(bpy.context, budget_s=0.0)
    job.cancel()
    assert job.state == "cancelled" and scene_snapshot() == before


def _curve_values(obj, name, frames):
    curve = next(c for c in _curves(obj.talking_head.action) if c.data_path == f'key_blocks["{name}"].value')
    return np.array([curve.evaluate(frame) for frame in frames])


def test_apply_controls_rewrite_the_curves_from_the_solved_weights_and_rescore(editable):
    """Issue 17 item 6: gain, smoothing and lead/lag without re-running the generator."""
    run_animate()
    start = bpy.context.scene.frame_start
    frames = np.arange(start, editable.talking_head.frame_end_set + 1)
    jaw = _curve_values(editable, "jawOpen", frames)
    scores = editable.talking_head.scores_json
    settings = bpy.context.scene.talking_head
    settings.jaw_gain, settings.shift_ms = 0.5, 100.0        # 100 ms = 3 frames at 30 fps
    pipeline._loaded_generators.clear()                       # a generator run would reload it: none must happen
    assert bpy.ops.talking_head.apply_controls() == {"FINISHED"}
    assert not pipeline._loaded_generators
    moved = _curve_values(editable, "jawOpen", frames)
    np.testing.assert_allclose(moved[3:], 0.5 * jaw[:-3], atol=0.011)   # thinning tolerance 0.01
    assert editable.talking_head.scores_json != scores
    settings.jaw_gain, settings.shift_ms = 1.0, 0.0
    bpy.ops.talking_head.apply_controls()
    np.testing.assert_allclose(_curve_values(editable, "jawOpen", frames), jaw, atol=1e-6)   # back where it was


def test_blinks_are_their_own_seeded_switchable_channel(editable):
    settings = bpy.context.scene.talking_head
    run_animate()
    frames = np.arange(bpy.context.scene.frame_start, editable.talking_head.frame_end_set + 1)
    blinks = _curve_values(editable, "eyeBlink_L", frames)
    settings.seed = 5
    run_animate()
    other = _curve_values(editable, "eyeBlink_L", frames)
    settings.blinks = False
    run_animate()
    assert blinks.max() > 0.9 and not np.allclose(blinks, other)
    assert _curve_values(editable, "eyeBlink_L", frames).max() < 0.5   # only what the solve found in the clip


def test_close_lips_toggle_reaches_the_backend_and_the_info_line(editable, flame_ply):
    """"Close lips on /p b m/" (default on) is carried into the backend call: switched off, the exact per-frame
    bake is the generator's unguarded output, which on the sample sentence's bilabials differs by millimetres."""
    settings = bpy.context.scene.talking_head
    assert settings.lip_closure   # the default
    settings.bake = properties.BAKE_PER_FRAME   # the generator's output exactly
    samples, rate = load_audio(SAMPLE_WAV)
    template = load_flame_mesh(flame_ply).vertices.astype(np.float32)
    generator = load_generator(DEFAULT_GENERATOR, SHIPPED)
    guarded, unguarded = (generator.animate(samples, rate, template, lip_closure=guard) for guard in (True, False))
    assert (lip_distance_curve(unguarded) - lip_distance_curve(guarded)).max() > 0.001   # the guard shut a bilabial
    for guard, expected in ((True, guarded), (False, unguarded)):
        settings.lip_closure = guard
        job = _job()
        assert job.run_here(bpy.context) == "finished"
        np.testing.assert_allclose(baked_keys(editable), expected, atol=1e-5)
        assert ("(lip closure guard off)" in job.report_line()) is not guard
        assert job.report_line().startswith(f"Animated with '{DEFAULT_GENERATOR}'")


class _RecordingLayout:
    """A stand-in for bpy's UILayout that records (property name, whether its row is active) of every prop()."""

    def __init__(self, drawn: list):
        self.drawn, self.active = drawn, True

    def prop(self, data, name, **options):
        self.drawn.append((name, self.active))

    def __getattr__(self, name):   # split, row, column, box, label, operator, ...: a child layout
        return lambda *args, **options: _RecordingLayout(self.drawn)


def _drawn_props(obj) -> dict:
    from types import SimpleNamespace
    from blender_addon import panel
    drawn = []
    preferences = SimpleNamespace(addons=bpy.context.preferences.addons, system=SimpleNamespace(ui_scale=1.0))
    context = SimpleNamespace(scene=bpy.context.scene, preferences=preferences, active_object=obj,
                              region=SimpleNamespace(width=300))   # -b mode: no region, ui_scale 0
    panel.TALKINGHEAD_PT_panel.draw(SimpleNamespace(layout=_RecordingLayout(drawn)), context)
    return dict(drawn)


def test_the_panel_shows_the_close_lips_toggle_greyed_for_a_generator_without_the_guard(editable):
    assert _drawn_props(editable)["lip_closure"] is True           # the default v2 generator runs the guard
    bpy.context.scene.talking_head.generator = "faceformer_small"  # a v1 graph: no front end, no guard
    assert _drawn_props(editable)["lip_closure"] is False
