"""The add-on tracks what it made by identity, not name (issue 16 item 5), keeps a //relative audio path relative
and preselects the default generator, naming broken generator folders instead of hiding the good ones (item 12).
pip bpy; fixtures from test_addon."""

import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.blender

bpy = pytest.importorskip("bpy")

from test_addon import (SAMPLE_WAV, add_flame_object, blender, head, models, run_animate,  # noqa: F401,E402
                        scene_snapshot)

from backend.generators import DEFAULT_GENERATOR  # noqa: E402
from blender_addon import bake, operators, properties  # noqa: E402
from onnx_test_models import write_rms_generator  # noqa: E402


def _activate(obj) -> None:
    for other in bpy.context.view_layer.objects:
        other.select_set(False)
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj


def _duplicate(obj):
    """Shift+D on `obj` (the operator, with the default Duplicate Data preferences)."""
    _activate(obj)
    before = set(bpy.data.objects)
    with bpy.context.temp_override(active_object=obj, selected_objects=[obj], object=obj):
        assert bpy.ops.object.duplicate() == {"FINISHED"}
    (copy,) = set(bpy.data.objects) - before
    return copy


def test_remove_on_a_shift_d_duplicate_keeps_the_original_heads_strip_and_sound(head):
    assert run_animate() == {"FINISHED"}
    strip = bake.owned_strips(bpy.context.scene, head)[0]
    sound, plot = strip.sound, head.talking_head.plot_image
    sound_name = sound.name
    copy = _duplicate(head)
    _activate(copy)
    assert bpy.ops.talking_head.remove() == {"FINISHED"}
    assert bake.owned_strips(bpy.context.scene, head) == [strip] and strip.sound == sound
    assert sound.name in bpy.data.sounds and plot.name in bpy.data.images
    assert bake.has_animation(head) and head.data == head.talking_head.baked_mesh
    assert not bake.has_animation(copy) and copy.data == head.talking_head.original_mesh
    _activate(head)
    assert bpy.ops.talking_head.remove() == {"FINISHED"}
    assert sound_name not in bpy.data.sounds and not bake.owned_strips(bpy.context.scene, head)


def test_a_renamed_strip_is_still_the_add_ons(head):
    before = scene_snapshot()
    run_animate()
    bake.owned_strips(bpy.context.scene, head)[0].name = "dialogue take 3"
    run_animate()   # replaces the previous animation, renamed strip included
    strips = bpy.context.scene.sequence_editor.strips_all
    assert len(strips) == 1 and strips[0].name != "dialogue take 3"
    bake.owned_strips(bpy.context.scene, head)[0].name = "dialogue take 4"
    bpy.ops.talking_head.remove()
    assert scene_snapshot() == before


def test_the_frame_end_is_restored_only_if_the_add_on_set_it_and_nobody_changed_it(head):
    scene = bpy.context.scene
    run_animate()
    scene.frame_end = 400   # the user's own range
    bpy.ops.talking_head.remove()
    assert scene.frame_end == 400


def test_a_second_head_keeps_its_range_when_another_is_animated_or_removed(head, tmp_path):
    import soundfile
    scene = bpy.context.scene
    samples, rate = soundfile.read(SAMPLE_WAV, dtype="float32")
    soundfile.write(tmp_path / "long.wav", np.concatenate([samples, samples]), rate)
    scene.talking_head.audio_path = str(tmp_path / "long.wav")
    run_animate()
    long_end = scene.frame_end
    other = add_flame_object(_flame_ply(), "Second")
    _activate(other)
    scene.talking_head.audio_path = str(SAMPLE_WAV)
    run_animate()
    assert scene.frame_end == long_end            # Animate did not cut the long head's range
    bpy.ops.talking_head.remove()
    assert scene.frame_end == long_end            # nor did Remove
    _activate(head)
    bpy.ops.talking_head.remove()
    assert scene.frame_end == 250                 # the factory range, as before anything was animated


def _flame_ply():
    from conftest import SHARED
    return SHARED / "flame" / "FLAME_sample.ply"


def test_a_relative_audio_path_stays_relative_when_the_project_moves(head, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(SAMPLE_WAV, project / "take.wav")
    bpy.ops.wm.save_as_mainfile(filepath=str(project / "scene.blend"))
    bpy.context.scene.talking_head.audio_path = "//take.wav"
    assert run_animate() == {"FINISHED"}
    bpy.ops.wm.save_mainfile()
    moved = shutil.move(str(project), str(tmp_path / "moved"))
    bpy.ops.wm.open_mainfile(filepath=str(Path(moved) / "scene.blend"))
    obj = bpy.data.objects["Head"]
    (strip,) = bake.owned_strips(bpy.context.scene, obj)
    assert strip.sound.filepath == "//take.wav" and obj.talking_head.audio_path == "//take.wav"
    _activate(obj)
    assert operators.score_blocker(bpy.context) is None
    assert bpy.ops.talking_head.score() == {"FINISHED"}


def test_the_panel_preselects_the_default_generator_and_names_broken_folders(blender, tmp_path):
    root = tmp_path / "models"
    for name in ("aaa_alphabetically_first", DEFAULT_GENERATOR):
        write_rms_generator(root / "generators" / name)
    (root / "generators" / "broken_one").mkdir()
    (root / "generators" / "broken_one" / "model.json").write_text("{ nope")
    blender.models_dir = str(root)   # the fixture's scene is fresh: no generator chosen yet
    assert bpy.context.scene.talking_head.generator == DEFAULT_GENERATOR
    infos, broken = properties.generator_infos(bpy.context)
    assert sorted(info.name for info in infos) == sorted(["aaa_alphabetically_first", DEFAULT_GENERATOR])
    assert [name for name, _ in broken] == ["broken_one"] and "not valid JSON" in broken[0][1]
    shutil.rmtree(root / "generators" / "aaa_alphabetically_first")
    shutil.rmtree(root / "generators" / DEFAULT_GENERATOR)
    add_flame_object(_flame_ply())
    bpy.context.scene.talking_head.audio_path = str(SAMPLE_WAV)
    assert "broken_one" in operators.animate_blocker(bpy.context)
