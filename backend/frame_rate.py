"""Mesh frame rate: the one MESH_FPS every 30 fps animation uses, and the one frame-rate converter.

Generators, the speech-mesh models (PLRS) and the add-on all work on FLAME meshes at MESH_FPS; datasets,
scoring and the add-on's scene rate convert with `resample_frames`.
"""

import numpy as np

from backend.errors import BackendError

MESH_FPS = 30
RESAMPLE_BLOCK = 256   # frames interpolated at a time by resample_frames


def resample_frames(frames: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """(T, ...) frames at `fps_in` -> (K, ...) at `fps_out`, in the input's float dtype.

    Equal rates return the input unchanged. An integer ratio keeps every k-th frame (60 -> 30 takes frames
    0, 2, 4, ...: what FaceFormer and its successors train on); any other ratio interpolates linearly between
    the two nearest frames at times k / fps_out, up to the last input frame: K = floor((T - 1) * fps_out /
    fps_in) + 1.
    """
    if not (fps_in > 0 and fps_out > 0):
        raise BackendError(f"frame rates must be positive, got {fps_in} -> {fps_out}")
    frames = np.asarray(frames)
    if fps_in == fps_out or len(frames) < 2:
        return frames
    ratio = fps_in / fps_out
    if abs(ratio - round(ratio)) < 1e-9:
        return np.ascontiguousarray(frames[::int(round(ratio))])
    count = int(np.floor((len(frames) - 1) / ratio + 1e-9)) + 1
    positions = np.arange(count) * ratio
    lower = np.minimum(np.floor(positions).astype(np.int64), len(frames) - 2)
    weight = (positions - lower).reshape((-1,) + (1,) * (frames.ndim - 1))
    dtype = frames.dtype if np.issubdtype(frames.dtype, np.floating) else np.float64
    resampled = np.empty((count,) + frames.shape[1:], dtype=dtype)
    for start in range(0, count, RESAMPLE_BLOCK):   # float64 temporaries of a block, never of the take
        block = slice(start, start + RESAMPLE_BLOCK)
        resampled[block] = (1.0 - weight[block]) * frames[lower[block]] + weight[block] * frames[lower[block] + 1]
    return resampled
