"""Talking Head: speech-driven FLAME lip motion in Blender, with lip-sync scores (MTM, PLRS, SLCC).

The add-on only moves data between Blender and `backend` (imports only backend and bpy); it is both a
Blender 4.2+ extension (blender_manifest.toml) and a legacy add-on (bl_info).
"""

from . import dependencies

dependencies.ensure_importable()

import bpy  # noqa: E402  (after the bundled packages are importable)

from . import operators, panel, preferences, properties  # noqa: E402

bl_info = {
    "name": "Talking Head (FLAME)",
    "author": "flame-talking-heads",
    "version": (0, 1, 0),
    "blender": (4, 1, 0),   # official builds before 4.1 run Python 3.10, which the bundled wheels do not cover
    "location": "3D Viewport > Sidebar (N) > Talking Head",
    "description": "Animate a FLAME head from speech and score the lip sync (MTM, PLRS, SLCC)",
    "category": "Animation",
}

CLASSES = (preferences.TalkingHeadPreferences, *operators.CLASSES, *panel.CLASSES)


def register() -> None:
    properties.register()
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
    properties.unregister()
