"""Input checks shared by the metrics: shapes, finiteness, index arrays, equal lengths.

Every check raises MetricError with what was found and what was expected, so a metric called on
bad arrays says why instead of returning NaN.
"""

import numpy as np

from backend.errors import MetricError


def vertex_sequence(array, name: str = "vertices") -> np.ndarray:
    """`array` as (T, V, 3) without copying, accepting the flattened (T, V*3) layout too.

    Only the shape is checked here; metrics check finiteness on the vertices they read
    (`vertices_at`), so a 10-minute clip is not converted or scanned as a whole.
    """
    values = np.asarray(array)
    if not (np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)):
        raise MetricError(f"{name}: holds {values.dtype} values; expected numeric vertex positions")
    if values.ndim == 2 and values.shape[1] % 3 == 0 and values.shape[1] > 0:
        values = values.reshape(len(values), -1, 3)
    if values.ndim != 3 or values.shape[2] != 3:
        raise MetricError(f"{name}: expected a vertex sequence of shape (frames, vertices, 3) or "
                          f"(frames, vertices*3); got shape {np.shape(array)}")
    if len(values) == 0:
        raise MetricError(f"{name}: has 0 frames; expected at least 1")
    return values


def vertices_at(sequence: np.ndarray, indices: np.ndarray, name: str = "vertices", first_frame: int = 0) -> np.ndarray:
    """(T, K, 3) float64 positions of the vertices `indices`; MetricError on NaN or infinity there (frames
    numbered from `first_frame`: the sequence's place in a longer one)."""
    selected = sequence[:, indices].astype(np.float64)
    bad = ~np.isfinite(selected)
    if bad.any():
        frame, column, _ = np.unravel_index(int(np.argmax(bad)), selected.shape)
        raise MetricError(f"{name}: has {int(bad.any(axis=2).sum())} non-finite vertex position(s) (NaN or inf), "
                          f"the first at frame {first_frame + frame}, vertex {indices[column]}; "
                          "expected finite numbers")
    return selected


def curve(array, name: str = "curve", min_length: int = 1) -> np.ndarray:
    """A 1-D float64 copy of `array` with at least `min_length` finite samples."""
    values = np.asarray(array, dtype=np.float64)
    if values.ndim != 1:
        raise MetricError(f"{name}: expected a 1-D curve (one value per frame); got shape {values.shape}")
    if len(values) < min_length:
        raise MetricError(f"{name}: has {len(values)} samples; expected at least {min_length}")
    finite(values, name)
    return values


def finite(values: np.ndarray, name: str) -> None:
    """Raise MetricError if `values` holds NaN or infinity, saying how many and where the first is."""
    bad = ~np.isfinite(values)
    if bad.any():
        first = np.unravel_index(int(np.argmax(bad)), values.shape)
        raise MetricError(f"{name}: has {int(bad.sum())} non-finite value(s) (NaN or inf), the first at "
                          f"index {tuple(int(i) for i in first)}; expected finite numbers")


def vertex_indices(indices, num_vertices: int, name: str) -> np.ndarray:
    """A 1-D int64 index array, every entry in [0, num_vertices)."""
    values = np.asarray(indices)
    if values.ndim != 1 or values.size == 0 or not np.issubdtype(values.dtype, np.integer):
        raise MetricError(f"{name}: expected a non-empty 1-D integer array of vertex indices; "
                          f"got {values.dtype} array of shape {values.shape}")
    if values.min() < 0 or values.max() >= num_vertices:
        raise MetricError(f"{name}: vertex indices run from {values.min()} to {values.max()}, but the mesh "
                          f"has {num_vertices} vertices (valid indices 0 to {num_vertices - 1})")
    return values.astype(np.int64)


def same_vertex_count(first: np.ndarray, second: np.ndarray, names: tuple[str, str]) -> None:
    """Raise MetricError unless two (T, V, 3) sequences have the same V."""
    if first.shape[1] != second.shape[1]:
        raise MetricError(f"{names[0]} has {first.shape[1]} vertices per frame but {names[1]} has "
                          f"{second.shape[1]}; both must use the same topology")


def truncate_to_shorter(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut both sequences to the shorter length along axis 0 (the published evaluation does the same)."""
    length = min(len(first), len(second))
    return first[:length], second[:length]


def check_fps(fps: float) -> float:
    """A positive finite frame rate as float."""
    value = float(fps)
    if not np.isfinite(value) or value <= 0:
        raise MetricError(f"fps must be a positive number of frames per second; got {fps!r}")
    return value
