"""LVE, Lip Vertex Error (REFERENCE §2): the worst lip vertex per frame, squared, averaged over frames.

For each frame: max over the lip vertices (FLAME's 254-entry list, duplicates kept so numbers match
the published ones) of the squared L2 distance between ground truth and prediction. Dataset LVE is the
mean over all frames of all clips (frame-weighted, not a mean of clip means). Units: squared metres;
VOCASET papers print the value x 1e-5.
"""

import numpy as np

from backend.errors import MetricError
from backend.metrics import inputs


def lip_errors_per_frame(gt_vertices, pred_vertices, lip_indices) -> np.ndarray:
    """(T,) max squared lip-vertex error per frame; the two (T, V, 3) clips are cut to the shorter."""
    gt = inputs.vertex_sequence(gt_vertices, "ground-truth vertices")
    pred = inputs.vertex_sequence(pred_vertices, "predicted vertices")
    inputs.same_vertex_count(gt, pred, ("ground truth", "prediction"))
    lips = inputs.vertex_indices(lip_indices, gt.shape[1], "lip vertex indices")
    gt, pred = inputs.truncate_to_shorter(gt, pred)
    gt_lips = inputs.vertices_at(gt, lips, "ground-truth vertices")
    pred_lips = inputs.vertices_at(pred, lips, "predicted vertices")
    squared = np.sum((gt_lips - pred_lips) ** 2, axis=2)
    return squared.max(axis=1)


def clip_lve(gt_vertices, pred_vertices, lip_indices) -> float:
    """One clip's LVE (mean over its frames), squared metres."""
    return float(np.mean(lip_errors_per_frame(gt_vertices, pred_vertices, lip_indices)))


def dataset_lve(per_frame_errors: list[np.ndarray]) -> float:
    """Dataset LVE: mean over every frame of every clip (pass each clip's lip_errors_per_frame)."""
    if not per_frame_errors:
        raise MetricError("dataset LVE needs at least one clip; got none")
    return float(np.mean(np.concatenate(per_frame_errors)))
