"""The project's shape-key basis on FLAME: ARKit's mouth and jaw keys, eyeBlink_L/R and the brow keys.

Every key is a displacement field (5023, 3) in metres on the user's FLAME template, made from the articulatory
rig (backend.rig.flame_rig: its jaw rotation, lip fields, eyelid rotations and brow field) and from FLAME regions
(the lip, face and eye masks) and two lip-centre vertex ids. `ShapeBasis.build(rig)` computes them at run time.

Licence (why nothing of the basis is stored): FLAME's topology, template and masks are under the FLAME licence
(non-commercial research, no redistribution). The displacements are derived from that geometry, so they are
computed on the user's own template and masks when needed; the project ships only the recipe below (code and a
few per-key numbers, all fractions of the head size). A .blend the add-on bakes holds the keys made from the
user's template, under the user's FLAME licence.

Conventions: the FLAME frame (x towards the subject's left, y up, z out of the face); `_L` is the subject's left
(+x), as in ARKit. A key at weight 1 is its full shape; weights live in [0, 1] (the solver's bounds). Left/right
pairs split a symmetric motion with a smooth side weight, so `X_L + X_R` is the symmetric motion.
"""

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from backend.flame import NUM_VERTICES
from backend.rig.flame_rig import CONTROLS, FlameRig

MOUTH_KEYS = (
    "jawOpen", "jawForward", "jawLeft", "jawRight", "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft",
    "mouthRight", "mouthSmile_L", "mouthSmile_R", "mouthFrown_L", "mouthFrown_R", "mouthDimple_L",
    "mouthDimple_R", "mouthStretch_L", "mouthStretch_R", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthPress_L", "mouthPress_R", "mouthLowerDown_L", "mouthLowerDown_R", "mouthUpperUp_L",
    "mouthUpperUp_R", "cheekPuff")
EYE_KEYS = ("eyeBlink_L", "eyeBlink_R")
BROW_KEYS = ("browInnerUp", "browDown_L", "browDown_R", "browOuterUp_L", "browOuterUp_R")
KEY_NAMES = MOUTH_KEYS + EYE_KEYS + BROW_KEYS

# Rig control amounts at weight 1: the rig drives `close` and `labiodental` up to ~2 on real speech labels
# (closing the lips over an open jaw), so those keys cover 2.5 of the rig's unit.
CLOSE_AT_FULL = 2.5
LABIODENTAL_AT_FULL = 2.5
# Sizes of the hand-made motions, as fractions of the head size (ear to ear, ~0.15 m): 0.04 is ~6 mm.
JAW_SHIFT = 0.04
MOUTH_SHIFT = 0.05
CORNER_MOVE = 0.02
LIP_RAISE = 0.025
CHEEK_PUFF = 0.03
REBUILD_BLOCK = 512   # frames rebuilt at a time


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass(frozen=True)
class ShapeBasis:
    """K named displacement fields on one FLAME template.

    names: K key names (KEY_NAMES); displacements: (K, 5023, 3) float32 metres; template: (5023, 3) float64;
    `region`: the vertex ids any key moves (the solver fits only these).
    """

    names: tuple
    displacements: np.ndarray
    template: np.ndarray
    lips: np.ndarray       # the FLAME lip vertex ids (unique): the solver fits them LIP_FIT_WEIGHT times harder

    @classmethod
    def build(cls, rig: FlameRig) -> "ShapeBasis":
        """All KEY_NAMES on `rig`'s template (~50 ms)."""
        fields = _Regions(rig).fields()
        return cls(names=KEY_NAMES, displacements=np.stack([fields[name] for name in KEY_NAMES]).astype(np.float32),
                   template=rig.template, lips=rig.masks["lips"])

    @property
    def region(self) -> np.ndarray:
        return np.flatnonzero(np.abs(self.displacements).max(axis=(0, 2)) > 0)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def rebuild(self, weights: np.ndarray, vertices=None) -> np.ndarray:
        """(T, K) weights -> (T, V, 3) float32 positions of `vertices` (default all): template + weights @ keys."""
        weights = np.asarray(weights, dtype=np.float32)
        if weights.ndim != 2 or weights.shape[1] != len(self.names):
            raise ValueError(f"weights must be (T, {len(self.names)}); got {weights.shape}")
        selected = slice(None) if vertices is None else np.asarray(vertices)
        keys = self.displacements[:, selected].reshape(len(self.names), -1)
        rest = self.template[selected].astype(np.float32).reshape(-1)
        positions = np.empty((len(weights), keys.shape[1]), dtype=np.float32)
        for start in range(0, len(weights), REBUILD_BLOCK):   # no temporary of the take's size
            block = positions[start:start + REBUILD_BLOCK]
            np.matmul(weights[start:start + REBUILD_BLOCK], keys, out=block)
            block += rest
        return positions.reshape(len(weights), -1, 3)


class _Regions:
    """Smooth vertex weights on the rig's template (lip sides, mouth corners, cheeks, brows) and the key recipes."""

    def __init__(self, rig: FlameRig):
        self.rig = rig
        v = self.v = rig.template
        self.h = rig.head_size
        self.x = v[:, 0] - rig.mouth_centre[0]
        line = rig.mouth_centre[1] + (rig.corner_height - rig.mouth_centre[1]) * (self.x / rig.corner_x) ** 2
        above = v[:, 1] - line
        face = np.zeros(NUM_VERTICES)
        face[rig.masks["face"]] = 1.0
        face[np.concatenate([rig.masks["left_eyeball"], rig.masks["right_eyeball"]])] = 0.0
        lips = v[rig.masks["lips"]]
        distance, _ = cKDTree(lips).query(v)
        lip_area = np.exp(-(distance / (0.03 * self.h)) ** 2) * face
        self.mouth = np.exp(-(distance / (0.05 * self.h)) ** 2) * face
        self.upper = lip_area * _smoothstep(above / (0.006 * self.h) + 0.5)
        self.lower = lip_area * (1.0 - _smoothstep(above / (0.006 * self.h) + 0.5))
        self.left = _smoothstep(0.5 + self.x / (0.5 * rig.corner_x))   # 0 right of the midline .. 1 left
        corners = {"L": lips[np.argmax(lips[:, 0])], "R": lips[np.argmin(lips[:, 0])]}
        self.corner = {side: np.exp(-(np.linalg.norm(v - point, axis=1) / (0.05 * self.h)) ** 2) * face
                       for side, point in corners.items()}
        self.cheek = {side: np.exp(-(np.linalg.norm(v - (point + self.h * np.array([0.12 * sign, 0.05, -0.05])),
                                                    axis=1) / (0.07 * self.h)) ** 2) * face
                      for (side, point), sign in zip(corners.items(), (1.0, -1.0))}
        jaw = rig.rotations[0]
        self.jaw = np.zeros(NUM_VERTICES)
        self.jaw[jaw.vertices] = jaw.weights

    def side(self, name: str) -> np.ndarray:
        return self.left if name.endswith("_L") else 1.0 - self.left

    def control(self, name: str, amount: float = 1.0) -> np.ndarray:
        """The rig's displacement for one control at `amount` (others at 0), (5023, 3)."""
        controls = np.zeros((1, len(CONTROLS)))
        controls[0, CONTROLS.index(name)] = amount
        return self.rig.animate(controls)[0] - self.v

    def fields(self) -> dict:
        h, x = self.h, self.x
        close = self.control("close", CLOSE_AT_FULL)
        round_ = self.control("round")
        spread = self.control("spread")
        blink = self.control("blink")
        brow = self.control("brow")
        lips = self.upper + self.lower
        keys = {
            "jawOpen": self.control("jaw"),
            "jawForward": self.jaw[:, None] * [0.0, 0.0, JAW_SHIFT * h],
            "jawLeft": self.jaw[:, None] * [JAW_SHIFT * h, 0.0, 0.0],
            "jawRight": self.jaw[:, None] * [-JAW_SHIFT * h, 0.0, 0.0],
            "mouthClose": close,
            # pucker: the rig's rounding (corners in, lips forward); funnel: less narrow, the lips pushed apart
            "mouthFunnel": round_ * [0.6, 1.0, 1.2] + (self.upper - self.lower)[:, None] * [0.0, 0.3 * LIP_RAISE * h,
                                                                                            0.0],
            "mouthPucker": round_,
            "mouthLeft": self.mouth[:, None] * [MOUTH_SHIFT * h, 0.0, 0.0],
            "mouthRight": self.mouth[:, None] * [-MOUTH_SHIFT * h, 0.0, 0.0],
            "mouthRollLower": self.control("labiodental", LABIODENTAL_AT_FULL),
            "mouthRollUpper": self.upper[:, None] * [0.0, -0.4 * LIP_RAISE * h, -0.6 * LIP_RAISE * h],
            "mouthShrugLower": self.lower[:, None] * [0.0, 0.6 * LIP_RAISE * h, 0.4 * LIP_RAISE * h],
            "mouthShrugUpper": self.upper[:, None] * [0.0, 0.4 * LIP_RAISE * h, 0.3 * LIP_RAISE * h],
            "cheekPuff": sum(self.cheek[side][:, None] * [sign * CHEEK_PUFF * h, 0.0, 0.5 * CHEEK_PUFF * h]
                             for side, sign in (("L", 1.0), ("R", -1.0))),
            "browInnerUp": brow * np.exp(-(self.v[:, 0] / (0.12 * h)) ** 2)[:, None],
        }
        for side, sign in (("L", 1.0), ("R", -1.0)):
            part = self.side(f"_{side}")[:, None]
            corner = self.corner[side][:, None]
            # stretch: the rig's spreading (corners out and back, lips thinner); smile: half of it, corners up
            keys[f"mouthSmile_{side}"] = 0.5 * part * spread + corner * [sign * 0.3 * CORNER_MOVE * h,
                                                                         CORNER_MOVE * h, -0.3 * CORNER_MOVE * h]
            keys[f"mouthStretch_{side}"] = part * spread
            keys[f"mouthFrown_{side}"] = corner * [0.0, -CORNER_MOVE * h, 0.0]
            keys[f"mouthDimple_{side}"] = corner * [sign * 0.3 * CORNER_MOVE * h, 0.0, -CORNER_MOVE * h]
            keys[f"mouthPress_{side}"] = part * lips[:, None] * [0.0, 0.0, -0.3 * LIP_RAISE * h] \
                + part * (self.upper - self.lower)[:, None] * [0.0, -0.2 * LIP_RAISE * h, 0.0]
            keys[f"mouthLowerDown_{side}"] = part * self.lower[:, None] * [0.0, -1.5 * LIP_RAISE * h,
                                                                          0.2 * LIP_RAISE * h]
            keys[f"mouthUpperUp_{side}"] = part * self.upper[:, None] * [0.0, LIP_RAISE * h, 0.2 * LIP_RAISE * h]
            eye = (x > 0) if side == "L" else (x <= 0)
            keys[f"eyeBlink_{side}"] = blink * eye[:, None]
            lateral = (1.0 - np.exp(-(self.v[:, 0] / (0.12 * h)) ** 2)) * eye
            keys[f"browOuterUp_{side}"] = brow * lateral[:, None]
            keys[f"browDown_{side}"] = (-brow - np.abs(brow[:, 1:2]) * [sign * 0.3, 0.0, 0.0]) * eye[:, None]
        return keys
