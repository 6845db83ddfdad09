"""Which of a character's own shape keys each basis key drives, and how strongly (numpy/JSON only).

A `KeyMapping` is a list of rows `basis key -> target key name, gain`. A basis key may drive several target keys
(one row each: Character Creator splits browInnerUp into a left and a right key) or none (no row, or an empty
target name: shown as unmapped, its motion is dropped); a target key may be driven by one row only. The target's
curve is `gain * weight` of its basis key, clipped to [0, MAX_GAIN].

Built-in presets (the spellings below are public naming schemes, facts, not shapes):
- "ARKit": Apple's ARFaceAnchor.BlendShapeLocation raw values, the basis's own names (eyeBlink_L, mouthSmile_R).
- "ARKit Left/Right (FaceIt-style)": the same 35 keys spelled with Left/Right (eyeBlinkLeft, mouthSmileRight), as
  ARKit-ready characters for Live Link Face, VRChat "Perfect Sync" and FaceIt's ARKit expression set name them.
- "Character Creator 4 Extended": Reallusion CC4 Extended facial-profile morph names (Mouth_Smile_L, Brow_Drop_L,
  ...) as public ARKit-to-CC4 tables list them; CC4 opens the jaw with a bone, so jawOpen is unmapped there.
- "Custom (empty)": every key unmapped, to fill in the panel and save under a new name.
Rigify's face rig is bones, not shape keys, so it has no preset here.

User presets are JSON files (`{"format": FORMAT, "name": ..., "rows": [[basis, target, gain], ...]}`) in a folder
the host chooses (the add-on: Blender's user config folder), written atomically through backend.atomic.
"""

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend.atomic import write_json
from backend.errors import BackendError
from backend.retarget.basis import KEY_NAMES

FORMAT = "talking-head-key-mapping/1"
MAX_GAIN = 4.0
PRESET_SUFFIX = ".json"


class MappingError(BackendError):
    """A mapping that cannot be used: an unknown basis key, a target key the mesh lacks, a duplicate target, a
    bad gain, or a preset file that is not a mapping."""


@dataclass(frozen=True)
class MappingRow:
    basis_key: str
    target_key: str     # "" = unmapped
    gain: float = 1.0


@dataclass(frozen=True)
class KeyMapping:
    name: str
    rows: tuple

    @classmethod
    def from_pairs(cls, name: str, pairs) -> "KeyMapping":
        """From (basis_key, target_key) or (basis_key, target_key, gain) tuples."""
        return cls(name, tuple(MappingRow(pair[0], pair[1], float(pair[2]) if len(pair) > 2 else 1.0)
                               for pair in pairs))

    def to_dict(self) -> dict:
        return {"format": FORMAT, "name": self.name,
                "rows": [[row.basis_key, row.target_key, row.gain] for row in self.rows]}

    @classmethod
    def from_dict(cls, value, source: str = "mapping") -> "KeyMapping":
        if not isinstance(value, dict) or value.get("format") != FORMAT:
            raise MappingError(f"{source} is not a key mapping (expected JSON with \"format\": \"{FORMAT}\")")
        rows = value.get("rows")
        if not isinstance(value.get("name"), str) or not isinstance(rows, list) or not all(
                isinstance(row, list) and len(row) == 3 and isinstance(row[0], str) and isinstance(row[1], str)
                and isinstance(row[2], (int, float)) and not isinstance(row[2], bool) for row in rows):
            raise MappingError(f"{source}: expected \"name\" and \"rows\" as [[basis key, target key, gain], ...]")
        mapping = cls.from_pairs(value["name"], rows)
        mapping.check_rows(source)
        return mapping

    @property
    def mapped_rows(self) -> tuple:
        return tuple(row for row in self.rows if row.target_key)

    def unmapped(self) -> tuple:
        """Basis keys (in KEY_NAMES order) that drive no target key."""
        driving = {row.basis_key for row in self.mapped_rows}
        return tuple(name for name in KEY_NAMES if name not in driving)

    def check_rows(self, source: str = "mapping") -> None:
        """MappingError for an unknown basis key, a bad gain or a target key driven twice."""
        seen = {}
        for row in self.rows:
            if row.basis_key not in KEY_NAMES:
                raise MappingError(f"{source}: '{row.basis_key}' is not a basis key (expected one of "
                                   f"{', '.join(KEY_NAMES[:3])}, ... {len(KEY_NAMES)} ARKit names)")
            if not (math.isfinite(row.gain) and 0.0 <= row.gain <= MAX_GAIN):
                raise MappingError(f"{source}: gain {row.gain} of '{row.basis_key}' is outside 0..{MAX_GAIN:g}")
            if row.target_key and row.target_key in seen:
                raise MappingError(f"{source}: target key '{row.target_key}' is driven by both "
                                   f"'{seen[row.target_key]}' and '{row.basis_key}'; each key can follow one")
            if row.target_key:
                seen[row.target_key] = row.basis_key

    def check(self, target_keys, target: str = "the mesh") -> None:
        """check_rows, then MappingError when a mapped target key is not among `target_keys` or nothing is
        mapped at all."""
        self.check_rows(f"mapping '{self.name}'")
        available = set(target_keys)
        missing = [row.target_key for row in self.mapped_rows if row.target_key not in available]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise MappingError(f"mapping '{self.name}': {target} has no shape key '{missing[0]}'{more}; rename "
                               "the key, fix the row or clear its target")
        if not self.mapped_rows:
            raise MappingError(f"mapping '{self.name}' maps no basis key to a shape key of {target}")

    def target_curves(self, weights: np.ndarray, names=KEY_NAMES) -> tuple:
        """(target key names (M,), (T, M) float32 curves) from (T, K) basis `weights` with columns `names`."""
        weights = np.asarray(weights, dtype=np.float32)
        if weights.ndim != 2 or weights.shape[1] != len(names):
            raise ValueError(f"weights must be (T, {len(names)}); got {weights.shape}")
        rows = self.mapped_rows
        columns = [list(names).index(row.basis_key) for row in rows]
        gains = np.array([row.gain for row in rows], dtype=np.float32)
        curves = np.clip(weights[:, columns] * gains[None, :], 0.0, MAX_GAIN).astype(np.float32)
        return tuple(row.target_key for row in rows), curves


def _left_right(name: str) -> str:
    return re.sub(r"_L$", "Left", re.sub(r"_R$", "Right", name))


_CC4_NAMES = {
    "jawForward": "Jaw_Forward", "jawLeft": "Jaw_L", "jawRight": "Jaw_R", "mouthClose": "Mouth_Close",
    "mouthFunnel": ("Mouth_Funnel_Up_L", "Mouth_Funnel_Up_R", "Mouth_Funnel_Down_L", "Mouth_Funnel_Down_R"),
    "mouthPucker": ("Mouth_Pucker_Up_L", "Mouth_Pucker_Up_R", "Mouth_Pucker_Down_L", "Mouth_Pucker_Down_R"),
    "mouthLeft": "Mouth_L", "mouthRight": "Mouth_R", "mouthSmile_L": "Mouth_Smile_L", "mouthSmile_R": "Mouth_Smile_R",
    "mouthFrown_L": "Mouth_Frown_L", "mouthFrown_R": "Mouth_Frown_R", "mouthDimple_L": "Mouth_Dimple_L",
    "mouthDimple_R": "Mouth_Dimple_R", "mouthStretch_L": "Mouth_Stretch_L", "mouthStretch_R": "Mouth_Stretch_R",
    "mouthRollLower": ("Mouth_Roll_In_Lower_L", "Mouth_Roll_In_Lower_R"),
    "mouthRollUpper": ("Mouth_Roll_In_Upper_L", "Mouth_Roll_In_Upper_R"),
    "mouthShrugLower": "Mouth_Shrug_Lower", "mouthShrugUpper": "Mouth_Shrug_Upper",
    "mouthPress_L": "Mouth_Press_L", "mouthPress_R": "Mouth_Press_R",
    "mouthLowerDown_L": "Mouth_Down_Lower_L", "mouthLowerDown_R": "Mouth_Down_Lower_R",
    "mouthUpperUp_L": "Mouth_Up_Upper_L", "mouthUpperUp_R": "Mouth_Up_Upper_R",
    "cheekPuff": ("Cheek_Puff_L", "Cheek_Puff_R"), "eyeBlink_L": "Eye_Blink_L", "eyeBlink_R": "Eye_Blink_R",
    "browInnerUp": ("Brow_Raise_Inner_L", "Brow_Raise_Inner_R"), "browDown_L": "Brow_Drop_L",
    "browDown_R": "Brow_Drop_R", "browOuterUp_L": "Brow_Raise_Outer_L", "browOuterUp_R": "Brow_Raise_Outer_R",
}   # jawOpen: a bone (CC_Base_JawRoot) on CC4 characters


def _cc4_pairs():
    for name in KEY_NAMES:
        targets = _CC4_NAMES.get(name, ())
        for target in (targets,) if isinstance(targets, str) else targets:
            yield name, target


BUILTIN_PRESETS = {mapping.name: mapping for mapping in (
    KeyMapping.from_pairs("ARKit", [(name, name) for name in KEY_NAMES]),
    KeyMapping.from_pairs("ARKit Left/Right (FaceIt-style)", [(name, _left_right(name)) for name in KEY_NAMES]),
    KeyMapping.from_pairs("Character Creator 4 Extended", list(_cc4_pairs())),
    KeyMapping.from_pairs("Custom (empty)", []),
)}
DEFAULT_PRESET = "ARKit"


def best_builtin_for(target_keys) -> KeyMapping:
    """The built-in preset that maps the most basis keys onto existing `target_keys` (ARKit on a tie), with rows
    whose target the mesh lacks left unmapped: what a new character starts from."""
    available = set(target_keys)

    def reach(mapping):
        return len({row.basis_key for row in mapping.mapped_rows if row.target_key in available})

    best = max(BUILTIN_PRESETS.values(), key=reach)   # max keeps the first (ARKit) on a tie
    return KeyMapping(best.name, tuple(row if row.target_key in available else MappingRow(row.basis_key, "", row.gain)
                                       for row in best.rows))


def preset_path(folder, name: str) -> Path:
    """Where the user preset `name` lives in `folder` (a file name made of the name's safe characters)."""
    stem = re.sub(r"[^A-Za-z0-9._ -]+", "_", name).strip(" .")
    if not stem:
        raise MappingError(f"preset name {name!r} has no usable characters for a file name")
    return Path(folder) / f"{stem}{PRESET_SUFFIX}"


def save_preset(folder, mapping: KeyMapping) -> Path:
    """Write `mapping` as a user preset (atomically; the folder is created); a built-in name is refused."""
    if mapping.name in BUILTIN_PRESETS:
        raise MappingError(f"'{mapping.name}' is a built-in preset; save under another name")
    mapping.check_rows(f"mapping '{mapping.name}'")
    path = preset_path(folder, mapping.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, mapping.to_dict())
    return path


def load_preset(path) -> KeyMapping:
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise MappingError(f"cannot read preset {path}: {error.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MappingError(f"preset {path} is not valid JSON ({error})") from None
    return KeyMapping.from_dict(value, f"preset {path}")


def user_presets(folder) -> tuple:
    """({name: KeyMapping} of the readable presets in `folder`, [(file name, reason)] of broken ones)."""
    presets, broken = {}, []
    folder = Path(folder)
    if not folder.is_dir():
        return presets, broken
    for path in sorted(folder.glob(f"*{PRESET_SUFFIX}")):
        try:
            mapping = load_preset(path)
        except MappingError as error:
            broken.append((path.name, str(error)))
            continue
        presets[mapping.name] = mapping
    return presets, broken
