"""Lip-sync metrics (REFERENCE §2): MTM, LVE, FDD, SLCC, PLRS, single-clip scores, dataset scoring.

The metric functions take plain numpy arrays (vertex sequences (T, V, 3) or (T, V*3), index arrays,
curves), so they work on their own and on any topology where the definition makes sense.
"""

from backend.metrics.clip_scores import ClipSLCC, OffsetEstimate, clip_slcc, estimate_av_offset, mtm_against_reference
from backend.metrics.fdd import clip_fdd, dataset_fdd, upper_face_dynamics
from backend.metrics.lve import clip_lve, dataset_lve, lip_errors_per_frame
from backend.metrics.mtm import (ClipMTM, UnscorableClipError, clip_mtm, dataset_mtm, derivative_dtw_path,
                                 lip_distance_curve, mtm_from_curves)
from backend.metrics.plrs import (ClipPLRS, OnnxSpeechMeshEncoders, SpeechMeshEncoders, clip_plrs,
                                  dataset_plrs)
from backend.metrics.slcc import dataset_slcc, delta_slcc, lip_intensity, speech_intensity

__all__ = [
    "ClipMTM", "ClipPLRS", "ClipSLCC", "OffsetEstimate", "OnnxSpeechMeshEncoders", "SpeechMeshEncoders",
    "UnscorableClipError", "clip_fdd", "clip_lve", "clip_mtm", "clip_plrs", "clip_slcc", "dataset_fdd",
    "dataset_lve", "dataset_mtm", "dataset_plrs", "delta_slcc", "derivative_dtw_path", "estimate_av_offset",
    "lip_distance_curve", "lip_errors_per_frame", "lip_intensity", "mtm_against_reference", "mtm_from_curves",
    "dataset_slcc", "speech_intensity", "upper_face_dynamics",
]
