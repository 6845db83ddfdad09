"""Add-on preferences: models folder (default: the bundled models), FLAME template path, threads."""

from pathlib import Path

import bpy

from backend import models


def bundled_models_dir() -> Path:
    """The models folder shipped beside `backend` (generators/ and speech_mesh/ inside)."""
    return models.default_models_dir().parent


class TalkingHeadPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    models_dir: bpy.props.StringProperty(
        name="Models Folder", subtype="DIR_PATH", default="",
        description="Folder with generators/ and speech_mesh/ (empty: the models bundled with the add-on)")
    template_path: bpy.props.StringProperty(
        name="FLAME Template", subtype="FILE_PATH", default="",
        description="FLAME_sample.ply (or any FLAME template): fits the mesh onto it exactly (without one, its "
                    "units and orientation come from its own FLAME landmarks); FLAME_masks.npz beside it enables SLCC")
    threads: bpy.props.IntProperty(name="Threads", default=1, min=1, max=64,
                                   description="CPU threads for the generator and the speech-mesh encoders")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "models_dir")
        layout.label(text=f"Empty = bundled: {bundled_models_dir()}")
        layout.prop(self, "template_path")
        layout.prop(self, "threads")


def settings(context):
    """(models_dir Path, template_path str, threads int) from the preferences (defaults when not enabled
    through Blender's add-on system, e.g. registered by hand in a script)."""
    addon = context.preferences.addons.get(__package__)
    if addon is None:
        return bundled_models_dir(), "", 1
    prefs = addon.preferences
    folder = Path(bpy.path.abspath(prefs.models_dir)) if prefs.models_dir else bundled_models_dir()
    return folder, bpy.path.abspath(prefs.template_path) if prefs.template_path else "", prefs.threads
