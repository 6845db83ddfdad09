"""The Blender add-on with pip bpy 4.5: register, poll messages, animate, bake vs backend output after
save/reload, scores, cancel, failures leave the scene unchanged, remove only what the add-on made.

The generator is the tiny hand-built "rms_jaw" ONNX graph of tests/onnx_test_models.py (never shipped): the
lower-lip centre moves down in proportion to the RMS of each 533-sample audio frame."""

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.blender

bpy = pytest.importorskip("bpy")

REPO = Path(__file__).resolve().parents[1]
SAMPLE_WAV = REPO / "samples" / "sample_sentence.wav"


# ------------------------------------------------------------------------------------------- fixtures

import addon_utils  # noqa: E402  (bpy's module, importable once bpy is)

from backend.flame import LOWER_LIP_CENTRE  # noqa: E402
from backend.frame_rate import resample_frames  # noqa: E402
from backend.generators import load_generator  # noqa: E402
from backend.mesh import load_flame_mesh  # noqa: E402
from blender_addon import bake, operators, pipeline  # noqa: E402
from onnx_test_models import write_rms_generator, write_test_encoders  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    write_rms_generator(root / "generators" / "rms_jaw")
    return root


@pytest.fixture
def blender(models):
    """An empty scene with the add-on enabled and its models folder pointing at the test generator."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable("blender_addon", default_set=True)
    prefs = bpy.context.preferences.addons["blender_addon"].preferences
    prefs.models_dir = str(models)
    yield prefs
    addon_utils.disable("blender_addon", default_set=True)


def add_flame_object(path, name="Head"):
    mesh_file = load_flame_mesh(path)
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(mesh_file.vertices.tolist(), [], mesh_file.faces.tolist())
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    return obj


@pytest.fixture
def head(blender, flame_ply):
    obj = add_flame_object(flame_ply)
    bpy.context.scene.talking_head.audio_path = str(SAMPLE_WAV)
    return obj


def set_fps(fps: int) -> None:
    bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = fps, 1.0


def expected_frames(flame_ply, style=None) -> np.ndarray:
    """What the backend makes for the sample sentence on the FLAME template (30 fps, FLAME frame)."""
    import soundfile
    samples, rate = soundfile.read(SAMPLE_WAV, dtype="float32")
    template = load_flame_mesh(flame_ply).vertices.astype(np.float32)
    return _generator().animate(samples, rate, template, style)


def _generator():
    prefs = bpy.context.preferences.addons["blender_addon"].preferences
    return load_generator("rms_jaw", Path(prefs.models_dir) / "generators")


def baked_keys(obj) -> np.ndarray:
    """(K, V, 3) data of the add-on's per-frame shape keys (the Basis excluded)."""
    blocks = obj.data.shape_keys.key_blocks[1:]
    out = np.empty((len(blocks), len(obj.data.vertices) * 3), np.float32)
    for index, block in enumerate(blocks):
        block.data.foreach_get("co", out[index])
    return out.reshape(len(blocks), -1, 3)


def evaluated(obj, frame) -> np.ndarray:
    bpy.context.scene.frame_set(frame)
    mesh = obj.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
    return bake.mesh_vertices(mesh)


def scene_snapshot() -> dict:
    """Everything an add-on run could change: datablock names, object/mesh state, frame range, strips."""
    scene = bpy.context.scene
    state = {kind: sorted(item.name for item in getattr(bpy.data, kind))
             for kind in ("objects", "meshes", "actions", "shape_keys", "sounds", "images", "scenes")}
    state["objects_state"] = {obj.name: (obj.data.name if obj.data else None, tuple(obj.location), tuple(obj.scale),
                                         obj.animation_data.action.name if obj.animation_data and
                                         obj.animation_data.action else None, obj.talking_head.scores_json)
                              for obj in bpy.data.objects}
    state["mesh_vertices"] = {mesh.name: float(bake.mesh_vertices(mesh).astype(np.float64).sum())
                              for mesh in bpy.data.meshes}
    state["shape_key_blocks"] = {key.name: [block.name for block in key.key_blocks] for key in bpy.data.shape_keys}
    state["frames"] = (scene.frame_start, scene.frame_end, scene.frame_current, scene.render.fps)
    editor = scene.sequence_editor
    state["strips"] = sorted((strip.name, strip.channel, strip.frame_start) for strip in editor.strips_all) \
        if editor else None
    return state


def run_animate() -> set:
    return bpy.ops.talking_head.animate()


# ---------------------------------------------------------------------------------------------- tests

def test_register_adds_operators_panel_and_properties_and_unregister_removes_them(blender):
    assert hasattr(bpy.types, "TALKINGHEAD_PT_panel")
    for name in ("animate", "score", "remove", "import_flame"):
        assert hasattr(bpy.ops.talking_head, name)
    assert "talking_head" in bpy.types.Scene.bl_rna.properties
    addon_utils.disable("blender_addon", default_set=True)
    assert not hasattr(bpy.types, "TALKINGHEAD_PT_panel")
    assert "talking_head" not in bpy.types.Scene.bl_rna.properties
    addon_utils.enable("blender_addon", default_set=True)


def _poll_error(operator) -> str:
    with pytest.raises(RuntimeError) as error:
        operator()
    return str(error.value)


def test_poll_messages_say_why_buttons_are_disabled(blender, flame_ply, tmp_path):
    assert "Select a mesh object with FLAME topology" in _poll_error(run_animate)
    bpy.ops.mesh.primitive_cube_add()
    message = _poll_error(run_animate)
    assert "Not FLAME topology" in message and "has 8 vertices and 6 faces (6 quads)" in message
    add_flame_object(flame_ply)
    assert "Choose an audio file (WAV, FLAC or Ogg)" in _poll_error(run_animate)
    bpy.context.scene.talking_head.audio_path = str(tmp_path / "missing.wav")
    assert f"Audio file not found: {tmp_path / 'missing.wav'}" in _poll_error(run_animate)
    bpy.context.scene.talking_head.audio_path = str(SAMPLE_WAV)
    blender.models_dir = str(tmp_path)
    assert f"No generator models in {tmp_path / 'generators'}" in _poll_error(run_animate)
    assert "The active object has no animation made by this add-on" in _poll_error(bpy.ops.talking_head.remove)


def test_animate_bakes_exactly_the_backend_output_and_survives_save_and_reload(head, flame_ply, tmp_path):
    set_fps(30)
    assert run_animate() == {"FINISHED"}
    expected = expected_frames(flame_ply)
    scene = bpy.context.scene
    assert scene.frame_end - scene.frame_start + 1 == len(expected)
    np.testing.assert_array_equal(baked_keys(head), expected)
    np.testing.assert_allclose(evaluated(head, scene.frame_start + 40), expected[40], atol=1e-7)
    assert bake.mesh_vertices(head.talking_head.original_mesh).tolist() == \
        load_flame_mesh(flame_ply).vertices.astype(np.float32).tolist()   # the artist's mesh is untouched
    path = tmp_path / "saved.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    reloaded = bpy.data.objects["Head"]
    (strip,) = bake.owned_strips(bpy.context.scene, reloaded)
    assert strip.frame_start == bpy.context.scene.frame_start and Path(bpy.path.abspath(strip.sound.filepath)).resolve() == SAMPLE_WAV
    for frame in (0, 17, len(expected) - 1):
        np.testing.assert_allclose(evaluated(reloaded, bpy.context.scene.frame_start + frame), expected[frame],
                                   atol=1e-7)


def test_scene_fps_is_respected_by_resampling_from_30_fps(head, flame_ply):
    set_fps(24)
    run_animate()
    expected = resample_frames(expected_frames(flame_ply), 30, 24)
    np.testing.assert_allclose(baked_keys(head), expected, atol=1e-6)
    assert bpy.context.scene.frame_end - bpy.context.scene.frame_start + 1 == len(expected)
    assert len(expected) == math.floor((len(expected_frames(flame_ply)) - 1) * 24 / 30) + 1


def test_any_object_transform_and_a_scaled_rotated_mesh_map_through_the_flame_frame(head, flame_ply, blender):
    set_fps(30)
    head.location, head.scale = (3.0, -2.0, 1.0), (5.0, 5.0, 5.0)
    rotation = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], np.float64)   # 90 degrees about z
    rest = load_flame_mesh(flame_ply).vertices
    head.data.vertices.foreach_set("co", (100.0 * rest @ rotation.T + [1, 2, 3]).astype(np.float32).ravel())
    blender.template_path = str(flame_ply)
    bpy.context.scene.talking_head.bake = "PER_FRAME"   # exact positions to compare (the editable bake: its own tests)
    run_animate()
    expected = expected_frames(flame_ply)
    local = baked_keys(head)
    np.testing.assert_allclose(local, 100.0 * expected.astype(np.float64) @ rotation.T + [1, 2, 3], atol=2e-3)
    assert tuple(head.location) == (3.0, -2.0, 1.0) and tuple(head.scale) == (5.0, 5.0, 5.0)


def test_scores_show_mtm_and_slcc_and_say_plrs_is_missing_without_models(head, flame_ply, blender):
    blender.template_path = str(flame_ply)   # FLAME_masks.npz sits beside it in ../shared
    run_animate()
    scores = {score["name"]: score for score in json.loads(head.talking_head.scores_json)["scores"]}
    assert scores["MTM"]["value"] is not None and scores["MTM"]["value"] >= 0
    assert scores["SLCC"]["value"] is not None and -1 <= scores["SLCC"]["value"] <= 1
    assert scores["PLRS"] == {"name": "PLRS", "value": None, "unit": "", "note": "no speech-mesh encoder models found",
                              "limits": None}
    assert tuple(head.talking_head.plot_image.size) == (256, 256)


def test_plrs_is_scored_with_speech_mesh_models(head, blender, tmp_path, models):
    import shutil
    shutil.copytree(models, tmp_path / "models")
    write_test_encoders(tmp_path / "models" / "plrs_evaluator")
    (tmp_path / "models" / "plrs_evaluator" / "evaluator.json").write_text(json.dumps({"bands": {"good": 2.0,
                                                                                                "fair": 1.5}}))
    blender.models_dir = str(tmp_path / "models")
    run_animate()
    plrs = next(s for s in json.loads(head.talking_head.scores_json)["scores"] if s["name"] == "PLRS")
    assert plrs["value"] is not None and -1 <= plrs["value"] <= 1
    assert plrs["limits"] == [2.0, 1.5]    # the evaluator's own bands: a cosine below 1.5 reads poor
    from blender_addon.scoring import Score
    assert Score(**plrs).rating == "poor"


def test_score_operator_scores_a_hand_made_animation(blender, flame_ply):
    """A relative shape key keyed by hand to follow the loudness 3 frames late: MTM and the offset see it."""
    import soundfile
    from backend.metrics.clip_scores import speech_envelope
    set_fps(30)
    obj = add_flame_object(flame_ply)
    bpy.context.scene.talking_head.audio_path = str(SAMPLE_WAV)
    obj.shape_key_add(name="Basis")
    opened = obj.shape_key_add(name="open")
    coordinates = bake.mesh_vertices(obj.data)
    coordinates[LOWER_LIP_CENTRE, 1] -= 0.01
    opened.data.foreach_set("co", coordinates.ravel())
    samples, rate = soundfile.read(SAMPLE_WAV, dtype="float32")
    envelope = speech_envelope(samples.astype(np.float64), rate, 30.0)
    for frame, level in enumerate(envelope / envelope.max()):
        opened.value = float(level)
        opened.keyframe_insert("value", frame=1 + frame + 3)
    bpy.context.scene.frame_start, bpy.context.scene.frame_end = 1, len(envelope)
    before = scene_snapshot()
    assert bpy.ops.talking_head.score() == {"FINISHED"}
    scores = {score["name"]: score for score in json.loads(obj.talking_head.scores_json)["scores"]}
    assert scores["MTM"]["value"] == pytest.approx(100.0, abs=20.0), scores["MTM"]
    assert scores["MTM"]["note"] == "lips lag audio by 100 ms"
    assert "The active object has no animation made by this add-on" in _poll_error(bpy.ops.talking_head.remove)
    unchanged = ("images", "objects_state")
    assert {key: value for key, value in scene_snapshot().items() if key not in unchanged} == \
        {key: value for key, value in before.items() if key not in unchanged}


def test_score_operator_on_our_bake_matches_the_scores_made_while_animating(head):
    set_fps(30)
    run_animate()
    made = json.loads(head.talking_head.scores_json)["scores"]
    assert bpy.ops.talking_head.score() == {"FINISHED"}
    rescored = json.loads(head.talking_head.scores_json)["scores"]
    assert made[0]["value"] == pytest.approx(rescored[0]["value"])


@pytest.mark.parametrize("scale, linear", [
    (100.0, np.eye(3)),                                                              # centimetres
    (1.0, np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], np.float64)),                 # z up
    (1.0, np.diag([-1.0, 1.0, 1.0])),                                                # mirrored
    (100.0, np.array([[-1, 0, 0], [0, 0, -1], [0, 1, 0]], np.float64)),              # all three
])
def test_without_a_template_a_head_in_other_units_or_orientations_moves_like_flame(head, flame_ply, scale, linear):
    """Issue 16 item 9: default preferences (no template); the frame is recovered from the mesh itself."""
    set_fps(30)
    rest = load_flame_mesh(flame_ply).vertices.astype(np.float64)
    head.data.vertices.foreach_set("co", (scale * rest @ linear.T).astype(np.float32).ravel())
    assert run_animate() == {"FINISHED"}
    np.testing.assert_allclose(baked_keys(head), scale * expected_frames(flame_ply).astype(np.float64) @ linear.T,
                               atol=2e-5 * scale)


def test_score_animation_scores_exactly_the_audio_span(head, blender, tmp_path, models):
    """Issue 16 item 3: a static face gains nothing from a longer scene range (PLRS included)."""
    import shutil
    import soundfile
    shutil.copytree(models, tmp_path / "models")
    write_test_encoders(tmp_path / "models" / "plrs_evaluator")
    blender.models_dir = str(tmp_path / "models")
    set_fps(30)
    info = soundfile.info(SAMPLE_WAV)
    scene = bpy.context.scene
    results = []
    for end in (1 + round(info.frames / info.samplerate * 30) - 1, 250, 5000):
        scene.frame_start, scene.frame_end = 1, end
        assert bpy.ops.talking_head.score() == {"FINISHED"}
        results.append(json.loads(head.talking_head.scores_json))
    assert results[1] == results[0] and results[2] == results[0]
    assert len(results[0]["lip_opening"]) == info.frames * 30 // info.samplerate   # whole frames of audio
    assert next(s for s in results[0]["scores"] if s["name"] == "PLRS")["value"] is not None


def test_remove_takes_away_only_what_the_add_on_made(head):
    scene = bpy.context.scene
    head.shape_key_add(name="Basis")
    head.shape_key_add(name="artist smile")
    head.keyframe_insert("location", frame=1)
    scene.sequence_editor_create()
    scene.sequence_editor.strips.new_sound("artist music", str(SAMPLE_WAV), 1, 1)
    before = scene_snapshot()
    run_animate()
    assert scene_snapshot() != before
    assert bpy.ops.talking_head.remove() == {"FINISHED"}
    assert scene_snapshot() == before


def test_animating_again_replaces_the_previous_animation(head):
    run_animate()
    first = scene_snapshot()
    run_animate()
    assert scene_snapshot() == first


@pytest.mark.parametrize("setup, message", [
    ("text_as_wav", "cannot decode"),
    ("silent", "audio is silent"),
    ("corrupt_generator", "not a loadable ONNX model"),
    ("missing_template", "no_template.ply: file not found"),
    ("nan_generator", "NaN or infinite vertices"),
    ("bitflip_generator", "NaN or infinite vertices|moved a vertex"),
])
def test_failures_are_reported_and_leave_the_scene_unchanged(head, blender, tmp_path, setup, message):
    import soundfile
    if setup == "text_as_wav":
        (tmp_path / "bad.wav").write_text("not audio")
        bpy.context.scene.talking_head.audio_path = str(tmp_path / "bad.wav")
    elif setup == "silent":
        soundfile.write(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
        bpy.context.scene.talking_head.audio_path = str(tmp_path / "silent.wav")
    elif setup == "corrupt_generator":
        folder = write_rms_generator(tmp_path / "models" / "generators" / "rms_jaw")
        (folder / "generator.onnx").write_bytes(b"broken")
        blender.models_dir = str(tmp_path / "models")
    elif setup.endswith("_generator"):   # a corrupted copy of a shipped generator: refused before baking
        from corrupt_models import SHIPPED, corrupt_copy
        if not SHIPPED.is_dir():
            pytest.skip("the shipped generators are absent")
        corrupt_copy(tmp_path / "models" / "generators" / SHIPPED.name, setup.split("_")[0])
        blender.models_dir = str(tmp_path / "models")
        bpy.context.scene.talking_head.generator = SHIPPED.name
    else:
        blender.template_path = str(tmp_path / "no_template.ply")
    before = scene_snapshot()
    with pytest.raises(RuntimeError, match=message):
        run_animate()
    assert scene_snapshot() == before


def _job(context=None):
    return pipeline.AnimationJob(pipeline.gather_request(context or bpy.context))


def test_cancel_while_computing_leaves_the_scene_unchanged(head):
    before = scene_snapshot()
    job = _job()
    job.start_thread()
    job.cancel()
    job.wait()
    assert job.tick(bpy.context) == "cancelled"
    assert scene_snapshot() == before


def test_cancel_while_baking_removes_the_partial_bake(head):
    before = scene_snapshot()
    job = _job()
    job.start_thread()
    job.wait()
    assert job.tick(bpy.context) == "baking"
    job.tick(bpy.context, budget_s=0.0)
    assert scene_snapshot() != before   # a partial bake exists (outside the scene)
    job.cancel()
    assert job.state == "cancelled" and scene_snapshot() == before


def test_the_threaded_job_finishes_in_slices_like_the_modal_operator(head):
    job = _job()
    job.start_thread()
    job.wait()
    ticks = 0
    while job.tick(bpy.context, budget_s=0.0) not in ("finished", "failed"):
        ticks += 1
    # one tick starts the bake, a zero budget adds exactly one key per tick, then one finishing step per tick
    # (the last one attaches and finishes)
    assert ticks == 1 + len(job.result.local_frames) + len(pipeline.FINISHING_STEPS) - 1
    assert job.state == "finished" and bake.has_animation(head)


@pytest.mark.parametrize("finishing_steps_done", range(len(pipeline.FINISHING_STEPS)))
def test_cancel_between_finishing_steps_removes_everything_made_so_far(head, finishing_steps_done):
    before = scene_snapshot()
    job = _job()
    job.start_thread()
    job.wait()
    job.tick(bpy.context)
    while job.tick(bpy.context, budget_s=float("inf")) == "baking" and \
            len(job._finishing_steps) > len(pipeline.FINISHING_STEPS) - finishing_steps_done:
        pass
    assert job.state == "baking" and scene_snapshot() != before
    job.cancel()
    assert job.state == "cancelled" and scene_snapshot() == before


def test_deleting_the_object_while_computing_fails_cleanly(head):
    job = _job()
    job.start_thread()
    job.wait()
    bpy.data.objects.remove(head)
    before = scene_snapshot()
    assert job.tick(bpy.context) == "failed"
    assert "was deleted while it was being animated" in job.message
    assert scene_snapshot() == before


def test_import_flame_mesh_operator_keeps_vertex_order_and_rejects_other_meshes(blender, flame_ply, tmp_path):
    assert bpy.ops.talking_head.import_flame(filepath=str(flame_ply)) == {"FINISHED"}
    obj = bpy.context.active_object
    np.testing.assert_array_equal(bake.mesh_vertices(obj.data), load_flame_mesh(flame_ply).vertices.astype(np.float32))
    assert bake.flame_topology_problem(obj.data) is None
    (tmp_path / "tri.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    with pytest.raises(RuntimeError, match="has 3 vertices"):
        bpy.ops.talking_head.import_flame(filepath=str(tmp_path / "tri.obj"))


def test_generators_are_loaded_once_and_reloaded_when_their_files_change(models):
    generators_dir = models / "generators"
    first = pipeline.cached_generator("rms_jaw", generators_dir, 1)
    assert pipeline.cached_generator("rms_jaw", generators_dir, 1) is first
    with_two_threads = pipeline.cached_generator("rms_jaw", generators_dir, 2)
    assert with_two_threads is not first
    model_json = generators_dir / "rms_jaw" / "model.json"
    stat = model_json.stat()
    os.utime(model_json, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert pipeline.cached_generator("rms_jaw", generators_dir, 2) is not with_two_threads
