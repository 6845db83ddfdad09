"""Choose the lip closure guard's settings (backend.closure_guard.GuardSettings) on real speech no benchmark set uses.

Tuning clips: real Kathleen takes of *training* prompts (backend.heldout keeps the held-out prompts out), minus
every take a generator corpus used when `--corpus` names its manifest.json — real speech the shipped generators
never heard, of a speaker the benchmark's sets (a: held-out prompts, b: other speakers, c: TTS voices) never
show them in these recordings. Never shared/speech/dev, never a held-out prompt.

Each take is scored clean and as users record: a copy with 10-20 dB white or pink noise and one in a synthetic room
of RT60 0.3-0.8 s (`listening_copies`, our own draws as for the detector's training copies; the benchmark's set d
conditions stay the benchmark's). In a studio take both ears hear nearly every /p b m/, so without the copies the
grid could not see what a setting loses in noise. `--clean-only` scores the clean takes alone (the choice before).

Each model runs once per clip without the guard; every setting of the grid is then applied to those vertices and
scored by backend.metrics.phone_checks (closure, rest in pauses, openness rho, MTM and lag against the rig from
the labels). Each setting runs without the bilabial detector (backend.bilabial_detector) and with it at
`DETECTOR_THRESHOLDS`, its runs added to the front end's or only filling the gaps where the front end heard
nothing near (GuardSettings.detector_fills_gaps). The rule, fixed before looking: the setting with the highest mean closure over the models whose
rest is no lower than without the guard, openness rho at most `MAX_RHO_DROP` lower and median MTM at most
`MAX_MTM_RISE_MS` higher; among equal closures the shortest window (the least change to the graph's motion), then
the higher front-end threshold, then the gap filler, then with the detector (the evidence that carries to other
speakers: its card), then its higher threshold.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/closure_guard.py [--clips 60] [--models NAME,...] [--clean-only]
                                                                    [--corpus /tmp/gen_corpus/manifest.json] [--out DIR]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/closure_guard.py --heard

`--heard` only measures, after the choice: the share of the labelled /p b m/ of the real-speech set b (unseen
speakers) and of its listening conditions that the front end (its /p b m/ mass reaching the chosen threshold
within the phone plus 60 ms, for the recogniser's delay), the detector, or either hears: the most the guard can
ever close there.
"""

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.atomic import write_text  # noqa: E402
from backend.audio_conditions import noisy_and_room_copies  # noqa: E402
from backend.bilabial_detector import load_detector  # noqa: E402
from backend.closure_guard import ClosureGuard, DEFAULT_SETTINGS, GuardSettings, closure_weights  # noqa: E402
from backend.flame import FlameRegions  # noqa: E402
from backend.frame_rate import MESH_FPS  # noqa: E402
from backend.generators import DEFAULT_GENERATOR, SAMPLE_RATE, load_generator, speech_frontend_features  # noqa: E402
from backend.heldout import KATHLEEN_FOLDER, Utterance, is_heldout, labelled_utterances  # noqa: E402
from backend.mesh import load_flame_mesh  # noqa: E402
from backend.metrics import phone_checks  # noqa: E402
from backend.metrics.mtm import lip_distance_curve  # noqa: E402
from backend.progress import Progress  # noqa: E402
from backend.rig.flame_rig import FlameRig  # noqa: E402
from backend.rig.timeline import BILABIALS  # noqa: E402
from backend.speech_frontend import POSTERIOR_DIM, bilabial_columns, load_frontend  # noqa: E402

DEFAULT_SHARED = Path(os.environ.get("SHARED_DIR", REPO.parent / "shared"))
GRID = {"threshold": (0.3, 0.5, 0.7), "before_s": (0.0, 0.03, 0.05, 0.08), "after_s": (0.0, 0.02, 0.04),
        "ramp_s": (0.035,)}
# the bilabial detector: off, or at its own calibrated threshold (detector.json) and three higher ones, its runs
# added to the front end's (union) or only where the front end heard nothing near (gap filler)
DETECTOR_THRESHOLDS = (None, "calibrated", 0.3, 0.5, 0.7)
MAX_RHO_DROP = 0.02
MAX_MTM_RISE_MS = 2.0


def tuning_names(shared: Path, count: int, corpus_manifest=None) -> list:
    """Up to `count` Kathleen takes of training prompts that no corpus in `corpus_manifest` used, spread evenly
    over the folder's name order."""
    used = set()
    if corpus_manifest:
        for clip in json.loads(Path(corpus_manifest).read_text(encoding="utf-8"))["clips"]:
            used.update(clip.get("sentences") or [clip.get("sentence")])
    folder = shared / "speech" / KATHLEEN_FOLDER
    names = sorted(lab.name.removesuffix(".phones.lab") for lab in folder.glob("*.phones.lab"))
    eligible = [name for name in names if not is_heldout(name) and name not in used]
    return sorted(set(eligible[int(index)] for index in np.linspace(0, len(eligible) - 1, min(count, len(eligible)))))


def listening_copies(clips: list, seed: int = 0) -> list:
    """`clips`, then for each a copy with noise and one in a room (audio_conditions.noisy_and_room_copies), named
    `<name>+noise` and `<name>+room`; the same draws for the same clips and seed."""
    rng, copies = np.random.default_rng(seed), []
    for clip in clips:
        noisy, room = noisy_and_room_copies(clip.audio, clip.rate, rng)
        copies += [Utterance(f"{clip.name}+noise", noisy, clip.rate, clip.timeline),
                   Utterance(f"{clip.name}+room", room, clip.rate, clip.timeline)]
    return list(clips) + copies


def heard_bilabials(shared: Path, settings: GuardSettings = DEFAULT_SETTINGS) -> dict:
    """{condition: {"front end" / "detector" / "either": heard, "labelled": n}} over set b's labelled /p b m/,
    clean and through each listening condition: the front end's /p b m/ mass reaching settings.threshold within the
    phone plus 60 ms (the recogniser's delay), the bilabial detector's probability reaching
    settings.detector_threshold within the phone ±20 ms (it marks the closure itself)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import real_speech
    from backend import audio_conditions
    clips, counts = real_speech.dev_clips(shared), {}
    detector = load_detector()
    for condition in ("clean",) + tuple(audio_conditions.CONDITIONS):
        copies = clips if condition == "clean" else real_speech.condition_clips(clips, condition)
        tally = {"front end": 0, "detector": 0, "either": 0, "labelled": 0}
        for clip in copies:
            posterior = np.exp(load_frontend().features(clip.audio, SAMPLE_RATE).log_posteriors[:, bilabial_columns()])
            mass = posterior.sum(axis=1)
            probability = detector.probabilities(clip.audio, SAMPLE_RATE)
            for start, end, label in clip.timeline:
                if label in BILABIALS:
                    window = mass[int(start * 50):int((end + 0.06) * 50) + 1]
                    near = probability[max(int(start * 50) - 1, 0):int(end * 50) + 2]
                    front = bool(window.size and window.max() >= settings.threshold)
                    heard = bool(near.size and near.max() >= (settings.detector_threshold or np.inf))
                    tally["front end"] += front
                    tally["detector"] += heard
                    tally["either"] += front or heard
                    tally["labelled"] += 1
        counts[condition] = tally
    return counts


def summarise(checks: list) -> dict:
    pooled = phone_checks.summarise(checks)
    return {key: pooled.get(key) for key in ("closure", "rest", "openness_rho", "mtm_median_ms", "lag_frames")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=60)
    parser.add_argument("--models", default=",".join(dict.fromkeys([DEFAULT_GENERATOR, "selftalk_v2_perceptual",
                                                                    "faceformer_v2", "codetalker_v2"])),
                        help="generators to tune on (default: the default generator and the three of earlier runs)")
    parser.add_argument("--corpus", default=None, help="a corpus manifest.json whose Kathleen takes are left out")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--out", type=Path, default=REPO / "out" / "closure_guard")
    parser.add_argument("--clean-only", action="store_true", help="score the clean takes only, without their noisy "
                        "and reverberant copies")
    parser.add_argument("--heard", action="store_true", help="only report the /p b m/ of set b the front end hears")
    args = parser.parse_args(argv)
    if args.heard:
        for condition, tally in heard_bilabials(args.shared).items():
            labelled = tally["labelled"]
            print(f"set b {condition}: of {labelled} /p b m/ the front end hears {tally['front end']} "
                  f"({tally['front end'] / labelled:.0%}, threshold {DEFAULT_SETTINGS.threshold}), the detector "
                  f"{tally['detector']} ({tally['detector'] / labelled:.0%}, threshold "
                  f"{DEFAULT_SETTINGS.detector_threshold}), either {tally['either']} "
                  f"({tally['either'] / labelled:.0%})")
        return 0
    started = time.monotonic()
    mesh = load_flame_mesh(args.shared / "flame" / "FLAME_sample.ply")
    rig = FlameRig(mesh.vertices, mesh.faces, FlameRegions.load(args.shared / "flame" / "FLAME_masks.npz").masks)
    guard = ClosureGuard(mesh.vertices)
    chosen_names = set(tuning_names(args.shared, args.clips, args.corpus))
    clips = labelled_utterances(args.shared / "speech" / KATHLEEN_FOLDER, chosen_names.__contains__, SAMPLE_RATE)
    takes = len(clips)
    if not args.clean_only:
        clips = listening_copies(clips)
    models = list(dict.fromkeys(name for name in args.models.split(",") if name))   # each model counts once
    detector = load_detector()
    settings = [GuardSettings(*values, detector_threshold=None if level is None else
                              detector.threshold if level == "calibrated" else level, detector_fills_gaps=fills)
                for level in DETECTOR_THRESHOLDS for fills in ((True,) if level is None else (False, True))
                for values in itertools.product(*GRID.values())]
    checks = {(model, key): [] for model in models for key in [None] + settings}
    with Progress(len(clips) * len(models), "closure guard settings") as bar:
        for clip in clips:
            features = speech_frontend_features(clip.audio, clip.rate)
            bilabial = detector.probabilities(clip.audio, clip.rate)
            for model in models:
                vertices = load_generator(model).animate(clip.audio, clip.rate, mesh.vertices, lip_closure=False)
                reference = lip_distance_curve(phone_checks.rig_from_labels(rig, clip.timeline, len(vertices)))
                checks[model, None].append(phone_checks.check_clip(vertices, clip.timeline, rig, MESH_FPS, reference))
                for setting in settings:
                    weights = closure_weights(features[:, :POSTERIOR_DIM], len(vertices), setting, bilabial)
                    closed = guard.apply(vertices.copy(), weights)
                    checks[model, setting].append(phone_checks.check_clip(closed, clip.timeline, rig, MESH_FPS,
                                                                          reference))
                bar.update()
    rows = {(model, key): summarise(value) for (model, key), value in checks.items()}

    def admissible(setting) -> bool:
        limits = (("rest", -1, 0.0), ("openness_rho", -1, MAX_RHO_DROP), ("mtm_median_ms", 1, MAX_MTM_RISE_MS))
        for model in models:
            off, on = rows[model, None], rows[model, setting]
            for key, worse, margin in limits:   # a check the clips cannot measure (None) constrains nothing
                if off[key] is not None and on[key] is not None and worse * (on[key] - off[key]) > margin:
                    return False
        return True

    def closure(setting) -> float:
        return float(np.mean([rows[model, setting]["closure"] or 0.0 for model in models]))

    candidates = [setting for setting in settings if admissible(setting)]
    chosen = max(candidates, key=lambda s: (round(closure(s), 4), -(s.before_s + s.after_s), -s.threshold,
                                            s.detector_fills_gaps, s.detector_threshold is not None,
                                            s.detector_threshold or 0.0), default=None)
    lines = [f"# Lip closure guard settings on {takes} Kathleen takes of training prompts"
             + ("" if args.clean_only else f", each clean, with noise and in a room ({len(clips)} clips)"),
             "", f"Rule: highest mean closure with rest not lower, openness rho at most {MAX_RHO_DROP} lower and "
             f"MTM at most {MAX_MTM_RISE_MS} ms higher than without the guard; then the shortest window.", "",
             "| detector | threshold | before ms | after ms | "
             + " | ".join(f"{m}: closure / rest / rho / MTM" for m in models) + " | admissible |",
             "|---" * (5 + len(models)) + "|"]

    def cell(values) -> str:
        formats = (("closure", "{:.1%}"), ("rest", "{:.1%}"), ("openness_rho", "{:.2f}"), ("mtm_median_ms", "{:.1f}"))
        return " / ".join("n/a" if values[key] is None else form.format(values[key]) for key, form in formats)

    lines.append("| guard off | | | | " + " | ".join(cell(rows[m, None]) for m in models) + " | |")
    for setting in settings:
        mark = "**chosen**" if setting == chosen else ("yes" if setting in candidates else "")
        used = "off" if setting.detector_threshold is None else (
            f"{setting.detector_threshold:.2f}, {'gaps' if setting.detector_fills_gaps else 'union'}")
        lines.append(f"| {used} | {setting.threshold} | {setting.before_s * 1000:.0f} | {setting.after_s * 1000:.0f} | "
                     + " | ".join(cell(rows[m, setting]) for m in models) + f" | {mark} |")
    lines += ["", f"Chosen: {chosen}; shipped default: {DEFAULT_SETTINGS}"
              + (" (equal)" if chosen == DEFAULT_SETTINGS else " (DIFFERENT: update backend/closure_guard.py)"),
              f"{time.monotonic() - started:.0f} s"]
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "closure_guard.md", "\n".join(lines) + "\n")
    report = {"clips": [clip.name for clip in clips], "models": models,
              "chosen": chosen.__dict__ if chosen else None,
              "rows": [{"model": m, "setting": None if k is None else k.__dict__, **v} for (m, k), v in rows.items()]}
    write_text(args.out / "closure_guard.json", json.dumps(report, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
