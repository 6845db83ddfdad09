"""Measured truth of a SYNTHETIC corpus: SLCC, bilabial closure, lip-teeth contact, jaw vs vowel openness,
and the data's own MTM against a copy shifted by one frame (a sanity check: it should be 1 frame).

`clip_measures` runs on one clip while building (or on files, via `corpus_stats`); `summarise` pools them.
SLCC and MTM come from `backend.metrics` (the project's one implementation of REFERENCE §2).
"""

import numpy as np

from backend.audio import load_audio, to_int16
from backend.datasets import open_dataset
from backend.datasets.corpus import CONTROL_STORE, RIG_DIR, RIG_MASKS_FILE
from backend.errors import BackendError, MetricError
from backend.flame import LOWER_LIP_CENTRE, MM_PER_M, UPPER_LIP_CENTRE, FlameRegions
from backend.frame_rate import MESH_FPS
from backend.metrics import dataset_slcc, lip_intensity, speech_intensity
from backend.metrics.mtm import mtm_from_curves
from backend.metrics.phone_checks import CLOSED_ABOVE_REST_M, LABIODENTAL_CONTACT_M, pause_frames, rest_gap
from backend.rig.flame_rig import FlameRig
from backend.rig.timeline import BILABIALS, LABIODENTALS, PHONES, SILENCE, VOWEL_OPENNESS, segment_frames

CLOSED_MM = 1.0        # a bilabial counts as closed when the lip-centre gap gets below this
CONTACT_MM = LABIODENTAL_CONTACT_M * 1000   # /f v/ contact: lower-lip centre this near the teeth point


def measured_vertices(rig: FlameRig, lip_indices) -> np.ndarray:
    """The vertex ids the measures need (lips, lip centres, chin), sorted: only these are animated."""
    return np.unique(np.concatenate([np.asarray(lip_indices), [UPPER_LIP_CENTRE, LOWER_LIP_CENTRE, rig.chin_vertex]]))


def clip_measures(controls: np.ndarray, samples_int16: np.ndarray, timeline, rig: FlameRig, lip_indices,
                  fps: float) -> dict:
    """Per-clip numbers from the rig's (T, 7) controls (only the measured vertices are animated);
    samples_int16: (n,) the clip's int16 audio; timeline: (start, end, PHONE)."""
    chosen = measured_vertices(rig, lip_indices)
    where = {int(vertex): position for position, vertex in enumerate(chosen)}
    points = rig.animate(controls, chosen)                                     # (T, K, 3)
    upper, lower, chin = where[UPPER_LIP_CENTRE], where[LOWER_LIP_CENTRE], where[rig.chin_vertex]
    frame_times = np.arange(len(points)) / fps
    gap_m = np.linalg.norm(points[:, upper] - points[:, lower], axis=1)
    gap_mm = gap_m * MM_PER_M
    teeth_mm = np.linalg.norm(points[:, lower] - rig.teeth_point, axis=1) * MM_PER_M
    chin_drop = np.linalg.norm(points[:, chin] - rig.template[rig.chin_vertex], axis=1) * MM_PER_M
    closures, contacts, openness, drops, mid_gaps = [], [], [], [], []
    phones = {}
    for start, end, label in timeline:
        phones[label] = phones.get(label, 0) + 1
        frames = segment_frames(start, end, frame_times)
        middle = int(np.argmin(np.abs(frame_times - (start + end) / 2)))
        if label in BILABIALS:
            closures.append(float(gap_mm[frames].min()))
            mid_gaps.append(float(gap_m[middle]))
        elif label in LABIODENTALS:
            contacts.append(float(teeth_mm[frames].min()))
        elif label in VOWEL_OPENNESS:
            openness.append(VOWEL_OPENNESS[label])
            drops.append(float(chin_drop[middle]))
    shut = rest_gap(rig.template) + CLOSED_ABOVE_REST_M
    pauses = pause_frames(timeline, len(points), fps)
    silent = np.zeros(len(points), dtype=bool)
    for frames in [segment_frames(start, end, frame_times) for start, end, label in timeline if label == SILENCE]:
        silent[frames] = True
    try:
        shift_frames = mtm_from_curves(gap_m[1:], gap_m[:-1], fps).frames
    except MetricError:
        shift_frames = None
    return {"speech_intensity": speech_intensity(samples_int16),
            "lip_intensity": lip_intensity(points, [where[int(vertex)] for vertex in lip_indices]),
            "bilabial_gaps_mm": closures, "labiodental_distances_mm": contacts, "vowel_openness": openness,
            "chin_drop_mm": drops, "mtm_shift_frames": shift_frames, "seconds": len(samples_int16) / 16000.0,
            "frames": len(points), "silence_frames": int(silent.sum()), "pause_frames": int(len(pauses)),
            "rest_frames": int(np.sum(gap_m[pauses] <= shut)),
            "bilabials_shut": int(np.sum(np.asarray(mid_gaps) <= shut)), "phones": dict(sorted(phones.items()))}


def _within_clip_z(values: list) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    spread = values.std()
    return (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)


def jaw_openness_correlation(measures: list[dict]) -> float:
    """Pearson r of chin drop vs vowel openness at vowel centres, both z-scored within each clip."""
    openness, drops = [], []
    for clip in measures:
        if len(clip["vowel_openness"]) >= 3:
            openness.append(_within_clip_z(clip["vowel_openness"]))
            drops.append(_within_clip_z(clip["chin_drop_mm"]))
    if not openness:
        return float("nan")
    return float(np.corrcoef(np.concatenate(openness), np.concatenate(drops))[0, 1])


def _hours(measures: list[dict], clips: list[dict], key: str) -> dict:
    hours = {}
    for measure, clip in zip(measures, clips):
        hours[clip[key]] = hours.get(clip[key], 0.0) + measure["seconds"] / 3600
    return {name: round(value, 4) for name, value in sorted(hours.items())}


def voice_family(voice: str) -> str:
    """A voice without its espeak variant ('espeak:en-us+m3' -> 'espeak:en-us'): the rows of the tables."""
    return voice.split("+")[0]


def _per_voice_checks(measures: list[dict], clips: list[dict]) -> dict:
    """{voice family: {"clips", "hours", "closure", "rest", ...}}: the benchmark's closure and rest-in-pause
    rules (backend.metrics.phone_checks) pooled over the family's clips; None where nothing was measured."""
    pooled = {}
    for measure, clip in zip(measures, clips):
        row = pooled.setdefault(voice_family(clip["voice"]), {"clips": 0, "seconds": 0.0, "bilabials": 0, "shut": 0,
                                                "pause_frames": 0, "rest_frames": 0})
        row["clips"] += 1
        row["seconds"] += measure["seconds"]
        row["bilabials"] += len(measure["bilabial_gaps_mm"])
        row["shut"] += measure["bilabials_shut"]
        row["pause_frames"] += measure["pause_frames"]
        row["rest_frames"] += measure["rest_frames"]
    return {voice: {"clips": row["clips"], "hours": round(row["seconds"] / 3600, 4),
                    "closure": round(row["shut"] / row["bilabials"], 4) if row["bilabials"] else None,
                    "rest": round(row["rest_frames"] / row["pause_frames"], 4) if row["pause_frames"] else None,
                    "bilabials": row["bilabials"], "pause_frames": row["pause_frames"]}
            for voice, row in sorted(pooled.items())}


def summarise(measures: list[dict], clips: list[dict]) -> dict:
    """Corpus statistics (JSON-ready) from per-clip measures and the manifest's clip entries (subject, level,
    source, voice, condition)."""
    gaps = np.concatenate([clip["bilabial_gaps_mm"] for clip in measures] + [[]])
    contacts = np.concatenate([clip["labiodental_distances_mm"] for clip in measures] + [[]])
    shifts = [clip["mtm_shift_frames"] for clip in measures if clip["mtm_shift_frames"] is not None]
    phones = {phone: sum(clip["phones"].get(phone, 0) for clip in measures) for phone in PHONES}
    frames = sum(clip["frames"] for clip in measures)
    summary = {"synthetic": True, "clips": len(measures),
               "hours": round(sum(clip["seconds"] for clip in measures) / 3600, 4),
               "hours_by_source": _hours(measures, clips, "source"),
               "hours_by_voice": _hours(measures, [{"voice": voice_family(clip["voice"])} for clip in clips], "voice"),
               "voices": len({clip["voice"] for clip in clips}),
               "hours_by_condition": _hours(measures, clips, "condition"),
               "phone_counts": phones, "phones_missing": [phone for phone, count in phones.items() if not count],
               "silence_frame_share": round(sum(clip["silence_frames"] for clip in measures) / frames, 4) if frames else None,
               "long_pause_frame_share": round(sum(clip["pause_frames"] for clip in measures) / frames, 4) if frames else None,
               "checks_by_voice": _per_voice_checks(measures, clips),
               "bilabial_closure_rate": round(float(np.mean(gaps < CLOSED_MM)), 4) if gaps.size else None,
               "bilabial_segments": int(gaps.size),
               "labiodental_contact_rate": round(float(np.mean(contacts < CONTACT_MM)), 4) if contacts.size else None,
               "labiodental_segments": int(contacts.size),
               "jaw_openness_r": round(jaw_openness_correlation(measures), 4),
               "mtm_one_frame_shift_ms": round(float(np.mean(shifts)) * 1000 / MESH_FPS, 2) if shifts else None}
    try:
        correlation = dataset_slcc([clip["speech_intensity"] for clip in measures],
                                   [clip["lip_intensity"] for clip in measures],
                                   [clip["subject"] for clip in clips], [clip["level"] for clip in clips])
        summary["slcc"] = {name: round(value, 4) for name, value in correlation.items()}
    except MetricError as error:
        summary["slcc"] = f"not computable: {error}"
    return summary


def stats_table(stats: dict) -> str:
    """The statistics as a plain-text (Markdown) table: hours by source, condition and voice with each voice's
    closure and rest checks, the pause shares and phone coverage."""
    lines = [f"SYNTHETIC corpus: {stats['clips']} clips, {stats['hours']:.2f} h, {stats['voices']} voices", "",
             "| source | hours |", "|---|---|"]
    lines += [f"| {name} | {hours:.3f} |" for name, hours in stats["hours_by_source"].items()]
    lines += ["", "| condition | hours |", "|---|---|"]
    lines += [f"| {name} | {hours:.3f} |" for name, hours in stats["hours_by_condition"].items()]
    lines += ["", "| voice (espeak: by accent) | clips | hours | closure at /p b m/ | rest in pauses >= 0.3 s |", "|---|---|---|---|---|"]
    for voice, row in stats["checks_by_voice"].items():
        closure = "-" if row["closure"] is None else f"{row['closure']:.3f} of {row['bilabials']}"
        rest = "-" if row["rest"] is None else f"{row['rest']:.3f} of {row['pause_frames']} frames"
        lines.append(f"| {voice} | {row['clips']} | {row['hours']:.3f} | {closure} | {rest} |")
    counts = stats["phone_counts"]
    rarest = sorted((count, phone) for phone, count in counts.items() if phone != SILENCE)[:5]
    lines += ["", f"silence frames: {stats['silence_frame_share']:.3f} of all frames; frames inside pauses >= 0.3 s "
              f"(0.1 s trimmed): {stats['long_pause_frame_share']:.3f}",
              f"phones: {sum(1 for phone in PHONES if counts.get(phone))} of {len(PHONES)} present; rarest "
              + ", ".join(f"{phone} {count}" for count, phone in rarest)
              + (f"; missing {', '.join(stats['phones_missing'])}" if stats["phones_missing"] else "")]
    return "\n".join(lines) + "\n"


def plot_stats(stats: dict, path) -> None:
    """PNG: hours per voice family (coloured by engine) and the count of each phone."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    from backend.atomic import atomic_path
    voices = list(stats["hours_by_voice"])
    engines = sorted({voice.split(":")[0] for voice in voices})
    colours = {engine: pyplot.get_cmap("tab10")(number) for number, engine in enumerate(engines)}
    figure, (top, bottom) = pyplot.subplots(2, 1, figsize=(max(8, 0.22 * len(voices)), 8))
    top.bar(range(len(voices)), list(stats["hours_by_voice"].values()),
            color=[colours[voice.split(":")[0]] for voice in voices])
    top.set_xticks(range(len(voices)), voices, rotation=90, fontsize=6)
    top.set_ylabel("hours")
    top.set_title(f"SYNTHETIC corpus: {stats['hours']:.2f} h in {stats['clips']} clips, by voice")
    phones = [phone for phone in PHONES if phone != SILENCE]
    bottom.bar(range(len(phones)), [stats["phone_counts"][phone] for phone in phones], color="0.4")
    bottom.set_xticks(range(len(phones)), phones, rotation=90, fontsize=7)
    bottom.set_ylabel("segments")
    bottom.set_title(f"phone coverage; silence {stats['silence_frame_share']:.0%} of frames, "
                     f"long pauses {stats['long_pause_frame_share']:.0%}")
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=80, metadata={"Software": None})
    pyplot.close(figure)


def corpus_stats(corpus_dir) -> dict:
    """Recompute the statistics of a built corpus from its own files (manifest, wav, controls, rig files)."""
    dataset = open_dataset(corpus_dir, kind="corpus", fps=None)
    if dataset.store != CONTROL_STORE:
        raise BackendError(f"{corpus_dir}: a corpus of builder version 1 (stored vertices); rebuild it with "
                           "`python -m training.corpus build` (version 2 stores rig controls)")
    lips = FlameRegions.load(dataset.root / RIG_DIR / RIG_MASKS_FILE).lips
    measures, entries = [], []
    for clip_id in dataset.clip_ids():
        entry = dataset.manifest_entry(clip_id)
        audio, _ = load_audio(dataset.entry(clip_id).wav_path)
        timeline = [(float(start), float(end), str(label)) for start, end, label in entry.get("timeline") or []]
        measures.append(clip_measures(dataset.controls(clip_id), to_int16(audio), timeline,
                                      dataset.rig(str(entry["subject"])), lips, dataset.native_fps))
        entries.append(entry)
    return summarise(measures, entries)
