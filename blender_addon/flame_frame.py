"""Between a Blender mesh's local coordinates and the FLAME frame (metres), and between frame rates.

A FLAME mesh in Blender may have been scaled, rotated or moved in edit mode (its vertex coordinates are
then no longer FLAME metres); object-level location/rotation/scale never matter because everything here
works on local (object-space) coordinates, which Blender transforms on top. `FlameFrame` is the similarity
transform (scale, rotation, translation) that maps the mesh's rest vertices onto a reference FLAME template
(least squares, Umeyama); with no reference it is the identity (the mesh data is taken to be FLAME metres).
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FlameFrame:
    """flame = scale * local @ rotation.T + translation, for (..., 3) arrays; `to_local` is the inverse."""

    scale: float = 1.0
    rotation: np.ndarray = None
    translation: np.ndarray = None

    @classmethod
    def fit(cls, local_rest: np.ndarray, flame_reference: np.ndarray) -> "FlameFrame":
        """Least-squares similarity transform taking local_rest (V, 3) onto flame_reference (V, 3)."""
        source = np.asarray(local_rest, dtype=np.float64)
        target = np.asarray(flame_reference, dtype=np.float64)
        source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
        source_centred, target_centred = source - source_mean, target - target_mean
        covariance = target_centred.T @ source_centred / len(source)
        left, singular, right_t = np.linalg.svd(covariance)
        reflection = np.eye(3)
        reflection[2, 2] = np.sign(np.linalg.det(left @ right_t)) or 1.0
        rotation = left @ reflection @ right_t
        variance = np.mean(np.sum(source_centred ** 2, axis=1))
        scale = float(np.sum(singular * np.diag(reflection)) / variance)
        translation = target_mean - scale * rotation @ source_mean
        return cls(scale=scale, rotation=rotation, translation=translation)

    @property
    def is_identity(self) -> bool:
        return self.rotation is None

    def to_flame(self, local: np.ndarray) -> np.ndarray:
        """(..., 3) local coordinates -> FLAME frame, float32."""
        if self.is_identity:
            return np.asarray(local, dtype=np.float32)
        flame = self.scale * np.asarray(local, dtype=np.float64) @ self.rotation.T + self.translation
        return flame.astype(np.float32)

    def to_local(self, flame: np.ndarray) -> np.ndarray:
        """(..., 3) FLAME frame -> local coordinates, float32 (the exact inverse of `to_flame`)."""
        if self.is_identity:
            return np.asarray(flame, dtype=np.float32)
        local = (np.asarray(flame, dtype=np.float64) - self.translation) @ self.rotation / self.scale
        return local.astype(np.float32)


def resample_frames(frames: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """(T, ...) frames at fps_in -> (K, ...) at fps_out by linear interpolation in time.

    Output frame k is at time k / fps_out; K covers the input's span: floor((T - 1) * fps_out / fps_in) + 1.
    Equal rates return the input unchanged (exact).
    """
    frames = np.asarray(frames)
    if fps_in == fps_out or len(frames) < 2:
        return frames
    count = int(np.floor((len(frames) - 1) * fps_out / fps_in + 1e-9)) + 1
    positions = np.arange(count) * (fps_in / fps_out)
    lower = np.minimum(np.floor(positions).astype(np.int64), len(frames) - 2)
    weight = (positions - lower).reshape((-1,) + (1,) * (frames.ndim - 1))
    return ((1.0 - weight) * frames[lower] + weight * frames[lower + 1]).astype(frames.dtype)
