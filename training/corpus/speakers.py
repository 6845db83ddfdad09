"""Synthetic speakers: a smooth identity deformation of the FLAME template and an articulation style (the
voice is chosen per clip by the builder; ESPEAK_ACCENTS x ESPEAK_VARIANTS are the espeak voices it draws from).

Identities are low-order polynomial displacement fields over head-normalised coordinates (left-right
symmetric) plus a global scale, so every subject is a plausible, smooth variation of the template.
"""

from dataclasses import dataclass

import numpy as np

from backend.rig.coarticulation import ArticulationStyle

ESPEAK_ACCENTS = ("en-us", "en", "en-gb-x-rp", "en-029", "en-gb-scotland", "en-us-nyc", "en-gb-x-gbclan")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
                   "klatt3", "adam", "ed", "john", "linda", "steph", "paul", "robert", "victor", "belinda")
# (x-odd, y/z-even) monomials over normalised coordinates (x, y, z): symmetric faces stay symmetric.
_X_TERMS = ((1, 0, 0), (1, 1, 0), (1, 0, 1), (1, 2, 0))
_YZ_TERMS = ((0, 1, 0), (0, 2, 0), (0, 0, 1), (2, 0, 0), (0, 1, 1), (2, 1, 0))


@dataclass(frozen=True)
class Speaker:
    """One synthetic subject. name has no underscore (it is the id prefix), e.g. 'SYN01'."""

    name: str
    scale: float
    shape: tuple                # coefficients: len(_X_TERMS) for dx, then len(_YZ_TERMS) each for dy, dz
    style: ArticulationStyle

    def as_dict(self) -> dict:
        """JSON-ready description for the manifest."""
        style = self.style
        return {"scale": round(self.scale, 4), "articulation_gain": round(style.gain, 4),
                "jaw_balance": round(style.jaw_balance, 4), "lip_balance": round(style.lip_balance, 4),
                "timing_offset_ms": round(style.timing_offset_s * 1000, 2),
                "blink_rate_hz": round(style.blink_rate_hz, 3), "brow_gain": round(style.brow_gain, 3)}


def make_speakers(count: int, rng: np.random.Generator, first_number: int = 1) -> list[Speaker]:
    """`count` random speakers SYN<first_number>, SYN<first_number+1>, ... (deterministic given rng)."""
    speakers = []
    for number in range(first_number, first_number + count):
        shape = rng.normal(0.0, 0.035, len(_X_TERMS) + 2 * len(_YZ_TERMS))
        style = ArticulationStyle(gain=float(rng.uniform(0.85, 1.15)), jaw_balance=float(rng.uniform(0.8, 1.2)),
                                  lip_balance=float(rng.uniform(0.8, 1.2)),
                                  timing_offset_s=float(rng.uniform(-0.008, 0.008)),
                                  blink_rate_hz=float(rng.uniform(0.2, 0.45)), brow_gain=float(rng.uniform(0.5, 1.0)))
        speakers.append(Speaker(name=f"SYN{number:02d}", scale=float(rng.uniform(0.93, 1.07)),
                                shape=tuple(float(value) for value in shape), style=style))
    return speakers


def identity_template(template: np.ndarray, head_size: float, speaker: Speaker) -> np.ndarray:
    """(5023, 3) the speaker's neutral face: template scaled about its centre plus a smooth deformation."""
    centre = template.mean(0)
    normalised = (template - centre) / head_size
    coefficients = np.asarray(speaker.shape)

    def field(terms, weights):
        return sum(weight * np.prod(normalised ** np.array(powers), axis=1) for powers, weight in zip(terms, weights))

    count_x, count_yz = len(_X_TERMS), len(_YZ_TERMS)
    displacement = np.stack([field(_X_TERMS, coefficients[:count_x]),
                             field(_YZ_TERMS, coefficients[count_x:count_x + count_yz]),
                             field(_YZ_TERMS, coefficients[count_x + count_yz:])], axis=1)
    return centre + speaker.scale * (template - centre + head_size * displacement)
