"""Speech-driven FLAME talking heads: the pure-Python core (numpy, scipy, soundfile, onnxruntime).

No torch and no bpy here: `training` and `blender_addon` build on this package, never the reverse.
"""

from backend.errors import AudioError, BackendError, MeshError, MetricError, ModelError

__all__ = ["AudioError", "BackendError", "MeshError", "MetricError", "ModelError"]
