"""Blender add-on: translates between Blender data and `backend` (imports only backend and bpy)."""
