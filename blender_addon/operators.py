"""Operators: Animate from Audio (worker thread + modal timer; synchronous in -b mode), Score Animation,
Remove Animation, Apply Controls (editable bakes), Load / Save Preset (the key-mapping table), Import FLAME Mesh. Every user-caused error is shown as a Blender
report."""

import json
from pathlib import Path
from typing import Optional

import bpy
import numpy as np

from backend.audio import load_audio
from backend.errors import BackendError
from backend.frame_rate import MESH_FPS, resample_frames
from backend.mesh import load_flame_mesh
from backend.metrics.evaluation import audio_frame_count
from backend.retarget.curves import adjust_weights
from backend.retarget.mapping import KeyMapping, best_builtin_for, save_preset

from . import bake, pipeline, preferences, properties, scoring

TIMER_SECONDS = 0.02


def _mesh_blocker(context) -> Optional[str]:
    obj = context.active_object
    if obj is None or obj.type != "MESH":
        return "Select a mesh object with FLAME topology"
    problem = bake.flame_topology_problem(bake.rest_mesh(obj))
    return f"Not FLAME topology: {problem}" if problem else None


def _audio_blocker(path: str) -> Optional[str]:
    if not path:
        return "Choose an audio file (WAV, FLAC or Ogg)"
    if not Path(bpy.path.abspath(path)).is_file():
        return f"Audio file not found: {path}"
    return None


def _target_keys_blocker(context) -> Optional[str]:
    """Why the active mesh's own shape keys cannot be driven through the mapping table now, or None."""
    obj = context.active_object
    if obj is None or obj.type != "MESH":
        return "Select the character's mesh (the object with its shape keys)"
    template_path = preferences.settings(context)[1]
    if not template_path:
        return "Set the FLAME template in the add-on preferences (the generator animates it)"
    if pipeline.flame_masks_for(template_path) is None:
        return pipeline.TARGET_NEEDS_MASKS
    keys = obj.data.shape_keys
    if keys is None or not keys.use_relative:
        return f"'{obj.name}' has no relative shape keys to drive"
    names = properties.own_key_names(obj)
    try:
        properties.mapping_for(context.scene.talking_head, names).check(names, f"'{obj.name}'")
    except BackendError as error:
        return str(error)
    return None


def animate_blocker(context) -> Optional[str]:
    """Why Animate from Audio cannot run now, or None."""
    settings = context.scene.talking_head
    mesh_problem = _target_keys_blocker(context) if settings.bake == properties.BAKE_TARGET_KEYS \
        else _mesh_blocker(context)
    problem = mesh_problem or _audio_blocker(settings.audio_path)
    if problem:
        return problem
    infos, broken = properties.generator_infos(context)
    if not infos:
        folder = preferences.settings(context)[0] / "generators"
        if broken:
            return f"No usable generator models in {folder}; broken: {'; '.join(reason for _, reason in broken)}"
        return f"No generator models in {folder} (set the models folder in the add-on preferences)"
    return None


def scored_audio_path(context) -> str:
    """The audio to score against: the clip the add-on animated from, else the panel's audio file."""
    obj = context.active_object
    if bake.has_animation(obj):
        return obj.talking_head.audio_path
    return context.scene.talking_head.audio_path


def score_blocker(context) -> Optional[str]:
    return _mesh_blocker(context) or _audio_blocker(scored_audio_path(context))


def remove_blocker(context) -> Optional[str]:
    if not bake.has_animation(context.active_object):
        return "The active object has no animation made by this add-on"
    return None


def controls_blocker(context) -> Optional[str]:
    obj = context.active_object
    if not bake.has_animation(obj) or not obj.talking_head.basis_key_names:
        return "The active object has no editable bake made by this add-on"
    if obj.talking_head.action is None or bake.RAW_WEIGHTS not in obj.talking_head.action:
        return "The editable bake's action has lost its solved weights; animate again"
    return None


def _poll(cls, blocker) -> bool:
    if blocker is None:
        return True
    cls.poll_message_set(blocker)
    return False


class TALKINGHEAD_OT_animate(bpy.types.Operator):
    """Generate lip motion for the active FLAME mesh from the audio file, bake it and add the sound"""

    bl_idname = "talking_head.animate"
    bl_label = "Animate from Audio"
    bl_options = {"REGISTER", "UNDO"}

    _job: pipeline.AnimationJob = None
    _timer = None

    @classmethod
    def poll(cls, context):
        return _poll(cls, animate_blocker(context))

    def execute(self, context):
        """Synchronous run (background mode, scripts)."""
        job = pipeline.AnimationJob(pipeline.gather_request(context))
        return self._finish(context, job, job.run_here(context))

    def invoke(self, context, event):
        if bpy.app.background or context.window is None:
            return self.execute(context)
        self._job = pipeline.AnimationJob(pipeline.gather_request(context))
        self._job.start_thread()
        manager = context.window_manager
        self._timer = manager.event_timer_add(TIMER_SECONDS, window=context.window)
        manager.modal_handler_add(self)
        manager.progress_begin(0, 100)
        self._show_progress(context)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC":
            self._job.cancel()
            return self._finish(context, self._job, "cancelled")
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        state = self._job.tick(context)
        if state in ("finished", "failed", "cancelled"):
            return self._finish(context, self._job, state)
        self._show_progress(context)
        return {"PASS_THROUGH"}

    def _show_progress(self, context) -> None:
        percent = int(100 * self._job.progress)
        context.window_manager.progress_update(percent)
        phase = "baking" if self._job.state == "baking" else "generating"
        context.workspace.status_text_set(f"Animate from Audio: {phase} {percent}% (Esc cancels)")

    def _finish(self, context, job: pipeline.AnimationJob, state: str):
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            context.window_manager.progress_end()
            context.workspace.status_text_set(None)
        if state == "finished":
            for warning in job.result.warnings:
                self.report({"WARNING"}, f"'{job.request.object_name}': {warning}")
            self.report({"INFO"}, job.report_line())
            return {"FINISHED"}
        if state == "cancelled":
            self.report({"WARNING"}, "Animate from Audio cancelled; the scene is unchanged")
        else:
            self.report({"ERROR"}, job.message)
        return {"CANCELLED"}


def _store_scores(obj, scores: scoring.ClipScores) -> None:
    """Keep scores and their plot on the object (replacing the previous plot image the add-on made)."""
    props = obj.talking_head
    props.plot_image = bake.write_plot_image(props.plot_image, f"TalkingHead {obj.name} lip plot",
                                             scoring.plot_pixels(scores))
    props.scores_json = scores.to_json()


def score_active_object(context) -> scoring.ClipScores:
    """Scores of whatever animates the active mesh over exactly its audio's span (the audio starts at the scene's
    first frame; the scene's end frame does not matter), against that audio. Raises BackendError for bad input."""
    scene, obj = context.scene, context.active_object
    models_dir, template_path, threads = preferences.settings(context)
    samples, rate = load_audio(bpy.path.abspath(scored_audio_path(context)))
    scene_fps = bake.scene_fps(scene)
    span = int(np.ceil(len(samples) / rate * scene_fps - 1e-9)) + 1   # scene frames up to the audio's end
    frames = range(scene.frame_start, scene.frame_start + span)
    local = bake.sample_animation(context, obj, frames)
    if local.shape[1:] != (5023, 3):
        raise BackendError(f"'{obj.name}' evaluates to {local.shape[1]} vertices (a modifier may change them); "
                           "FLAME scoring needs the 5023 FLAME vertices: disable such modifiers")
    frame = pipeline.flame_frame_for(bake.mesh_vertices(bake.rest_mesh(obj)), template_path)
    flame = resample_frames(frame.to_flame(local), scene_fps, MESH_FPS)[:audio_frame_count(len(samples), rate,
                                                                                         MESH_FPS)]
    return scoring.score_animation(samples, rate, flame, models_dir, template_path, threads)


class TALKINGHEAD_OT_score(bpy.types.Operator):
    """Score the active mesh's current animation (made here, by hand or imported) against its audio"""

    bl_idname = "talking_head.score"
    bl_label = "Score Animation"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        return _poll(cls, score_blocker(context))

    def execute(self, context):
        try:
            scores = score_active_object(context)
        except BackendError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        _store_scores(context.active_object, scores)
        self.report({"INFO"}, " | ".join(score.text for score in scores.scores))
        return {"FINISHED"}


class TALKINGHEAD_OT_remove(bpy.types.Operator):
    """Remove the animation, sound strip and plot this add-on made for the active object (nothing else)"""

    bl_idname = "talking_head.remove"
    bl_label = "Remove Animation"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return _poll(cls, remove_blocker(context))

    def execute(self, context):
        bake.remove_animation(context.scene, context.active_object)
        self.report({"INFO"}, "Removed the talking-head animation; the original mesh is back")
        return {"FINISHED"}


class TALKINGHEAD_OT_apply_controls(bpy.types.Operator):
    """Rewrite the editable bake's curves from its solved weights with the mouth/jaw gain, smoothing and lead/lag
    (no generator run), then score the result"""

    bl_idname = "talking_head.apply_controls"
    bl_label = "Apply Controls"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return _poll(cls, controls_blocker(context))

    def execute(self, context):
        obj, settings = context.active_object, context.scene.talking_head
        props = obj.talking_head
        names = props.basis_key_names.split("\n")
        weights = adjust_weights(bake.raw_weights(props.action, len(names)), names, bake.scene_fps(context.scene),
                                 settings.mouth_gain, settings.jaw_gain, settings.smoothing_ms, settings.shift_ms)
        if bake.MAPPING in props.action:   # the character's own keys: through the mapping the bake used
            mapping = KeyMapping.from_dict(json.loads(props.action[bake.MAPPING]), "the bake's mapping")
            bake.write_weight_curves(props.action, *mapping.target_curves(weights, names))
            self.report({"INFO"}, "Controls applied to the character's keys (scores are of FLAME heads only)")
            return {"FINISHED"}
        bake.write_weight_curves(props.action, names, weights)
        try:
            scores = score_active_object(context)
        except BackendError as error:
            self.report({"WARNING"}, f"Controls applied; scoring failed: {error}")
            return {"FINISHED"}
        _store_scores(obj, scores)
        self.report({"INFO"}, " | ".join(score.text for score in scores.scores))
        return {"FINISHED"}


class TALKINGHEAD_OT_load_mapping(bpy.types.Operator):
    """Fill the mapping table from the chosen preset (built-in or saved); '(match the mesh's keys)' picks the
    built-in naming scheme that covers most of the active mesh's shape keys"""

    bl_idname = "talking_head.load_mapping"
    bl_label = "Load Preset"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        settings = context.scene.talking_head
        if settings.mapping_preset == properties.AUTO_PRESET:
            mapping = best_builtin_for(properties.own_key_names(context.view_layer.objects.active))
        else:
            presets, broken = properties.available_presets()
            mapping = presets.get(settings.mapping_preset)
            if mapping is None:
                self.report({"ERROR"}, f"preset '{settings.mapping_preset}' is gone"
                            + (f" ({broken[0][1]})" if broken else ""))
                return {"CANCELLED"}
        properties.fill_table(settings, mapping)
        unmapped = len(mapping.unmapped())
        self.report({"INFO"}, f"Loaded '{mapping.name}': {len(mapping.mapped_rows)} rows, {unmapped} basis keys "
                    "unmapped")
        return {"FINISHED"}


class TALKINGHEAD_OT_save_mapping(bpy.types.Operator):
    """Save the mapping table as a preset (JSON in Blender's user config folder) under the preset name"""

    bl_idname = "talking_head.save_mapping"
    bl_label = "Save Preset"
    bl_options = {"REGISTER"}

    def execute(self, context):
        settings = context.scene.talking_head
        try:
            path = save_preset(properties.presets_dir(), properties.mapping_from_table(settings))
        except BackendError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Saved preset '{settings.mapping_name}' to {path}")
        return {"FINISHED"}


class TALKINGHEAD_OT_import_flame(bpy.types.Operator):
    """Import a FLAME-topology mesh (.ply/.obj) keeping its vertex order and UV map, as a new object"""

    bl_idname = "talking_head.import_flame"
    bl_label = "Import FLAME Mesh"
    bl_options = {"REGISTER", "UNDO"}

    filepath: bpy.props.StringProperty(subtype="FILE_PATH")
    filter_glob: bpy.props.StringProperty(default="*.ply;*.obj", options={"HIDDEN"})

    def invoke(self, context, event):
        self.filepath = self.filepath or preferences.settings(context)[1]
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        try:
            flame = load_flame_mesh(bpy.path.abspath(self.filepath))
        except BackendError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        name = Path(self.filepath).stem
        mesh = bpy.data.meshes.new(name)
        mesh.from_pydata(np.asarray(flame.vertices, dtype=np.float64).tolist(), [],
                         np.asarray(flame.faces).tolist())
        if flame.uvs is not None and flame.uv_faces is not None:   # e.g. head_template.obj: keep its texture map
            layer = mesh.uv_layers.new(name="UVMap")
            corners = np.asarray(flame.uvs, dtype=np.float32)[np.asarray(flame.uv_faces).reshape(-1)]
            layer.data.foreach_set("uv", corners.ravel())   # from_pydata keeps the face corner order
        mesh.update()
        obj = bpy.data.objects.new(name, mesh)
        context.collection.objects.link(obj)
        for other in context.view_layer.objects:   # not context.selected_objects: absent outside a 3D view
            other.select_set(False)
        obj.select_set(True)
        context.view_layer.objects.active = obj
        return {"FINISHED"}


CLASSES = (TALKINGHEAD_OT_animate, TALKINGHEAD_OT_score, TALKINGHEAD_OT_remove, TALKINGHEAD_OT_apply_controls,
           TALKINGHEAD_OT_load_mapping, TALKINGHEAD_OT_save_mapping, TALKINGHEAD_OT_import_flame)
