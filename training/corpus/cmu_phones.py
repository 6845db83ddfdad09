"""The CMU phone set (flite, festival's cmulex, pocketsphinx) -> ARPAbet 39 + SIL, and end-time segments -> timeline.

flite and festival print lowercase CMU phones with their end times; pocketsphinx prints uppercase ones with
start and end frames. All three use the 39 ARPAbet phones plus a few extras (schwa `ax`, flap `dx`,
syllabic `el em en`, `axr`, `ix`, `ux`, `hv`, `nx`) and pause/noise symbols, mapped here to the nearest of
the 39 phones or SIL.
"""

from backend.errors import AudioError
from backend.rig.timeline import PHONES, check_timeline

_EXTRAS = {"ax": "AH", "axr": "ER", "ix": "IH", "ux": "UW", "dx": "T", "el": "L", "em": "M", "en": "N",
           "nx": "N", "hv": "HH"}
_PAUSES = {"pau", "sil", "h#", "brth", "sp", "ssil", "<s>", "</s>", "<sil>"}


def cmu_to_arpabet(phone: str) -> str:
    """ARPAbet 39 + SIL for one CMU phone (any case, stress digits ignored); AudioError for an unknown one."""
    name = phone.strip().lower().rstrip("012")
    if name in _PAUSES or (name.startswith("+") and name.endswith("+")):    # pocketsphinx noise: +NSN+ +SPN+ ...
        return "SIL"
    if name in _EXTRAS:
        return _EXTRAS[name]
    if name.upper() in PHONES:
        return name.upper()
    raise AudioError(f"phone {phone!r} is not in the CMU phone set; expected an ARPAbet phone, a CMU extra "
                     f"({', '.join(sorted(_EXTRAS))}) or a pause ({', '.join(sorted(_PAUSES))})")


def timeline_from_ends(ends, duration_s: float, source: str) -> list[tuple[float, float, str]]:
    """[(end_s, cmu_phone), ...] in order -> contiguous ARPAbet timeline from 0 to `duration_s`.

    Each phone starts where the one before it ends; zero-length phones are dropped, adjacent silences merge,
    times past the audio are clipped to it, and the last phone (or a SIL) is stretched to the audio's end.
    """
    timeline: list[list] = []
    start = 0.0
    for end, phone in ends:
        end = min(float(end), duration_s)
        label = cmu_to_arpabet(phone)
        if end <= start + 1e-6:
            continue
        if timeline and label == timeline[-1][2] == "SIL":
            timeline[-1][1] = end
        else:
            timeline.append([start, end, label])
        start = end
    if not timeline:
        raise AudioError(f"{source}: gave no phone with a duration; expected at least one phone time")
    if timeline[-1][1] < duration_s - 1e-6:
        if timeline[-1][2] == "SIL":
            timeline[-1][1] = duration_s
        else:
            timeline.append([timeline[-1][1], duration_s, "SIL"])
    result = [(round(start, 4), round(end, 4), label) for start, end, label in timeline]
    check_timeline(result, source)
    return result
