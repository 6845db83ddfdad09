"""FDD, upper-Face Dynamics Deviation (REFERENCE §2): how much less (or more) the upper face moves.

Motion = vertices - subject template. Per upper-face vertex: squared norm of the motion per frame,
then its standard deviation over time (population std, ddof=0); the mean over vertices is dyn(clip).
FDD = mean over clips of dyn(G) - dyn(P), signed as published: positive means the prediction's upper
face is less dynamic than the ground truth. Units: squared metres.
"""

import numpy as np

from backend.errors import MetricError
from backend.metrics import inputs


def upper_face_dynamics(vertices, template, upper_face_indices) -> float:
    """dyn(clip) of a (T, V, 3) sequence against its (V, 3) template."""
    sequence = inputs.vertex_sequence(vertices)
    rest = np.asarray(template, dtype=np.float64)
    if rest.shape != sequence.shape[1:]:
        raise MetricError(f"template: expected shape {sequence.shape[1:]} to match the sequence's vertices; "
                          f"got shape {rest.shape}")
    inputs.finite(rest, "template")
    region = inputs.vertex_indices(upper_face_indices, sequence.shape[1], "upper-face vertex indices")
    squared_motion = np.sum((inputs.vertices_at(sequence, region) - rest[region]) ** 2, axis=2)
    return float(np.mean(np.std(squared_motion, axis=0)))


def clip_fdd(gt_vertices, pred_vertices, template, upper_face_indices) -> float:
    """dyn(G) - dyn(P) for one clip; the two clips are cut to the shorter length first."""
    gt = inputs.vertex_sequence(gt_vertices, "ground-truth vertices")
    pred = inputs.vertex_sequence(pred_vertices, "predicted vertices")
    inputs.same_vertex_count(gt, pred, ("ground truth", "prediction"))
    gt, pred = inputs.truncate_to_shorter(gt, pred)
    return (upper_face_dynamics(gt, template, upper_face_indices)
            - upper_face_dynamics(pred, template, upper_face_indices))


def dataset_fdd(clip_values: list[float]) -> float:
    """Dataset FDD: mean of the clips' signed dyn(G) - dyn(P)."""
    if not clip_values:
        raise MetricError("dataset FDD needs at least one clip; got none")
    return float(np.mean(clip_values))
