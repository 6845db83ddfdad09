"""Three intensity levels (like MEAD): speech effort and articulation amplitude change together.

Level 1 is soft, 2 normal, 3 emphatic. For every voice, recorded or synthetic, the level sets a gain and a
spectral tilt of the audio (louder speech has relatively more high-frequency energy). The same level scales the articulation gain, so louder clips move the lips more (positive SLCC).
"""

import numpy as np

from backend.errors import AudioError

LEVELS = (1, 2, 3)
ARTICULATION_GAIN = {1: 0.7, 2: 1.0, 3: 1.3}
_RECORDED_GAIN = {1: 0.45, 2: 1.0, 3: 1.9}
_RECORDED_TILT = {1: -0.4, 2: 0.0, 3: 0.5}   # first-difference mix: <0 darker, >0 brighter


def check_level(level: int) -> int:
    if level not in LEVELS:
        raise AudioError(f"intensity level {level!r} is not supported; expected one of {LEVELS}")
    return level


def recorded_effort(samples: np.ndarray, level: int) -> np.ndarray:
    """Speech at a level: spectral tilt (mix of the first difference) then gain, soft-limited.

    samples: (n,) float32 in [-1, 1]. The limiter (0.98 tanh(x / 0.98)) is near-linear below -6 dBFS.
    """
    check_level(level)
    samples = np.asarray(samples, dtype=np.float64)
    tilted = samples + _RECORDED_TILT[level] * np.diff(samples, prepend=samples[:1])
    return (0.98 * np.tanh(_RECORDED_GAIN[level] * tilted / 0.98)).astype(np.float32)
