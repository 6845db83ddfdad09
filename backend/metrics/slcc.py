"""SLCC, Speech-Lip intensity Correlation Coefficient (REFERENCE §2): louder speech, bigger lip motion?

Per clip: speech intensity SI = RMS of the raw int16 samples; lip intensity LI = RMS over frames of the
per-frame mean (over lip vertices) of ||v[t] - v[t-1]|| (frames 1..T-1). SI and LI are z-normalised
within each speaker identity (population std), then SLCC = Pearson r over all clips. With intensity
levels (MEAD-3D; backend.datasets reads each clip's level), the per-level SLCC uses the same
identity-wise z-scores (computed over all of the identity's clips) restricted to that level's clips.
ΔSLCC = |SLCC(model) - SLCC(data)|.
"""


import numpy as np

from backend.errors import MetricError
from backend.metrics import inputs

MIN_CLIPS = 3  # fewest clips a Pearson r is reported for
LIP_BLOCK_FRAMES = 2048


def speech_intensity(int16_samples) -> float:
    """RMS of raw int16 samples (computed in float64, so no overflow)."""
    samples = np.asarray(int16_samples)
    if samples.ndim != 1 or samples.size == 0:
        raise MetricError(f"speech samples: expected a non-empty 1-D array; got shape {samples.shape}")
    if samples.dtype != np.int16:
        raise MetricError(f"speech samples: expected raw int16 samples (SLCC is defined on them); "
                          f"got {samples.dtype} (convert with backend.audio.to_int16)")
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def lip_motion_per_frame(vertices, lip_indices) -> np.ndarray:
    """(T-1,) mean over lip vertices of ||v[t] - v[t-1]|| for t = 1..T-1 (in blocks of LIP_BLOCK_FRAMES frames:
    a 10-minute take's float64 lip positions and their differences would take ~0.3 GB at once)."""
    sequence = inputs.vertex_sequence(vertices)
    if len(sequence) < 2:
        raise MetricError(f"lip intensity needs at least 2 frames; got {len(sequence)}")
    lips = inputs.vertex_indices(lip_indices, sequence.shape[1], "lip vertex indices")
    motion = np.empty(len(sequence) - 1)
    for start in range(0, len(sequence) - 1, LIP_BLOCK_FRAMES):
        block = inputs.vertices_at(sequence[start:start + LIP_BLOCK_FRAMES + 1], lips, first_frame=start)
        motion[start:start + len(block) - 1] = np.linalg.norm(np.diff(block, axis=0), axis=2).mean(axis=1)
    return motion


def lip_intensity(vertices, lip_indices) -> float:
    """LI: RMS over frames of the per-frame mean lip-vertex displacement."""
    return float(np.sqrt(np.mean(lip_motion_per_frame(vertices, lip_indices) ** 2)))


def _z_scores_within(values: np.ndarray, identities: np.ndarray, name: str) -> np.ndarray:
    scores = np.empty_like(values)
    for identity in np.unique(identities):
        members = identities == identity
        spread = values[members].std()
        if members.sum() < 2 or spread == 0:
            raise MetricError(f"SLCC: identity '{identity}' has {int(members.sum())} clip(s) with {name} spread "
                              f"{spread:g}; z-normalising within an identity needs at least 2 clips that differ")
        scores[members] = (values[members] - values[members].mean()) / spread
    return scores


def _pearson(first: np.ndarray, second: np.ndarray, what: str) -> float:
    if len(first) < MIN_CLIPS:
        raise MetricError(f"SLCC{what}: Pearson r needs at least {MIN_CLIPS} clips; got {len(first)}")
    if first.std() == 0 or second.std() == 0:
        raise MetricError(f"SLCC{what}: a constant intensity series has no correlation")
    return float(np.corrcoef(first, second)[0, 1])


def dataset_slcc(speech_intensities, lip_intensities, identities, levels=None) -> dict:
    """SLCC over clips. Inputs are (N,) per clip; levels (N,) ints or None entries, optional.

    Returns {"all": r} plus {"level_<n>": r} for each level present when levels are given; a level
    with fewer than MIN_CLIPS clips has no r and is left out (the "all" figure still stands).
    """
    speech = inputs.curve(speech_intensities, "speech intensities")
    lips = inputs.curve(lip_intensities, "lip intensities")
    names = np.asarray(identities, dtype=str)
    if not len(speech) == len(lips) == len(names):
        raise MetricError(f"SLCC: got {len(speech)} speech intensities, {len(lips)} lip intensities and "
                          f"{len(names)} identities; expected one of each per clip")
    speech_z = _z_scores_within(speech, names, "speech intensity")
    lips_z = _z_scores_within(lips, names, "lip intensity")
    result = {"all": _pearson(speech_z, lips_z, "")}
    if levels is not None:
        level_array = np.array([-1 if level is None else int(level) for level in levels])
        if len(level_array) != len(speech):
            raise MetricError(f"SLCC: got {len(level_array)} levels for {len(speech)} clips")
        for level in sorted(set(level_array) - {-1}):
            members = level_array == level
            if members.sum() < MIN_CLIPS:
                continue
            result[f"level_{level}"] = _pearson(speech_z[members], lips_z[members], f" level {level}")
    return result


def delta_slcc(model_slcc: float, data_slcc: float) -> float:
    """ΔSLCC = |SLCC(model) - SLCC(data)|."""
    return abs(float(model_slcc) - float(data_slcc))
