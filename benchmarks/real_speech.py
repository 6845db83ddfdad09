"""Real-speech sync benchmark: do the generators' lips close, rest and move in time on speech they never heard?

Every model runs on real or unseen speech with phone labels and is scored by backend.metrics.phone_checks
(REFERENCE §8: bilabial closure, rest in pauses, openness order, lag and MTM against the articulatory rig
driven by the same labels, lip-teeth contact at /f v/, jaw range). No 3D ground truth is needed.

Sets (`--sets`, default all):
  a  Kathleen held-out: every take of the prompts backend.heldout keeps out of all corpora (153 utterances)
  b  unseen real speakers: shared/speech/dev (9 labelled utterances, 5 speakers)
  c  unseen TTS voices: flite `rms` and festival `ked` (diphone) reading the first 10 held-out prompts, with
     the engines' own phone timings (neither voice is in any training corpus)
  d  conditions: (a) and (b) through backend.audio_conditions (10 dB SNR noise, RT60 0.5 s reverb, telephone
     band, -20 dB, Opus 16 kbps); only audio-driven rows (generators, loudness jaw): the others ignore audio
  e  long takes: held-out utterances joined with 0.5 s of silence into takes >= 60 s, plus the checks
     within 0.5 s of each seam: the boundaries of the generator's local-attention blocks (`attention_block`
     frames) and the middles of its chunk crossfades (backend.generators.chunk_starts, every 16 s)
  u  unlabelled clips of shared/speech/dev (German, Russian, singing): rest in pauses found from the audio
     level, jaw range, and a rendered strip

Rows (`--models`, default all): every generator in models/generators (through backend.generators, ONNX),
and reference rows in the same run, so the benchmark shows it can tell good from bad:
  rig           the rig driven by the labels (the ceiling; MTM 0 by construction)
  rig_shift2    the same, 2 frames late (MTM 66.7 ms, lag 2)
  rig_other_labels  the rig driven by another clip's labels (chance level for lag, MTM and openness)
  static_rest   the template held still (lips at the rest gap: passes closure and rest by definition, and
                nothing else)
  static_open   the rig held at a mid-vowel jaw opening (a floor: fails closure)
  loudness_jaw  the jaw opened by the audio level, nothing else (a floor: fails closure)
With `--unguarded`, every generator row gets a `<generator>+unguarded` row: the same generator with the lip closure
guard (backend.closure_guard) off, which is what the graph alone does. With `--rebuilt`, every generator row and the rig row get a `<row>+rebuilt` row beside them: the clip solved into
the add-on's ARKit-named shape-key basis (backend.retarget) and rebuilt from those weights, i.e. what the add-on's
compact bake plays back; it should score within 5 points of its own row.

Output in `--out` (default out/real_speech): real_speech.md (the table), real_speech.json (one row per
model x set with per-clip values), plots/<set>/<clip>.png (each generator's lip gap against the rig curve
with the phone labels under it), closeups/*.png (rendered lips of the default generator at bilabials) and
strips/*.png (unlabelled clips).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/real_speech.py [--sets a,b,c,d,e,u] [--models NAME,...]
                                                              [--rebuilt] [--unguarded] [--out DIR] [--shared DIR]
"""

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.atomic import atomic_path, write_text  # noqa: E402
from backend import audio_conditions  # noqa: E402
from backend.audio import load_audio  # noqa: E402
from backend.errors import BackendError  # noqa: E402
from backend.flame import FlameRegions  # noqa: E402
from backend.frame_rate import MESH_FPS  # noqa: E402
from backend.generators import (DEFAULT_GENERATOR, OVERLAP_SAMPLES, SAMPLE_RATE, chunk_starts,  # noqa: E402
                                frame_count, list_generators, load_generator)
from backend.heldout import dev_utterances, heldout_utterances, is_heldout, prompt_id  # noqa: E402
from backend.mesh import load_flame_mesh  # noqa: E402
from backend.metrics import phone_checks  # noqa: E402
from backend.metrics.mtm import lip_distance_curve  # noqa: E402
from backend.progress import Progress  # noqa: E402
from backend.retarget.basis import ShapeBasis  # noqa: E402
from backend.retarget.solver import solve_clip  # noqa: E402
from backend.rig.coarticulation import JAW_PER_OPENNESS  # noqa: E402
from backend.rig.flame_rig import CONTROLS, FlameRig  # noqa: E402
from backend.rig.timeline import BILABIALS, SILENCE  # noqa: E402

SETS = {"a": "Kathleen held-out", "b": "unseen real speakers", "c": "unseen TTS voices",
        "d": "conditions", "e": "long takes", "u": "unlabelled"}
REFERENCE_ROWS = ("rig", "rig_shift2", "rig_other_labels", "static_rest", "static_open", "loudness_jaw")
AUDIO_DRIVEN_REFERENCES = ("loudness_jaw",)
REBUILT = "+rebuilt"         # row suffix: the row's clip solved into the shape-key basis and rebuilt
UNGUARDED = "+unguarded"     # row suffix: the generator without the lip closure guard (backend.closure_guard)
SHIFT_FRAMES = 2
TTS_PROMPTS = 10
LONG_TAKE_S = 60.0
JOIN_PAUSE_S = 0.5
SEAM_WINDOW_S = 0.5
PLOTTED_PER_SET = 8          # per-clip plots for the first clips of a, d and e (every clip of b, c, u)
CLOSEUPS = 6
DEFAULT_SHARED = Path(os.environ.get("SHARED_DIR", REPO.parent / "shared"))


@dataclass
class Clip:
    """One utterance to animate: 16 kHz float audio and its phone timeline (None when unlabelled)."""

    name: str
    audio: np.ndarray
    timeline: list | None
    source: str = ""          # which base clip a condition copy was made from (its rig reference is shared)
    other_timeline: list | None = None   # another clip's labels, for the chance-level row


def _paired(clips: list[Clip]) -> list[Clip]:
    """Give each clip the next clip's labels (cyclically) for rig_other_labels."""
    for clip, other in zip(clips, clips[1:] + clips[:1]):
        clip.other_timeline = other.timeline
    return clips


# --- sets ------------------------------------------------------------------------------------------------
def heldout_clips(shared: Path) -> list[Clip]:
    """Set (a): every take of the held-out Kathleen prompts (backend.heldout), in file order."""
    return [Clip(item.name, item.audio, item.timeline, item.name) for item in heldout_utterances(shared, SAMPLE_RATE)]


def dev_clips(shared: Path) -> list[Clip]:
    """Set (b): the labelled utterances of the unseen-speaker folder."""
    return [Clip(item.name, item.audio, item.timeline, item.name) for item in dev_utterances(shared, SAMPLE_RATE)]


def unlabelled_clips(shared: Path) -> list[Clip]:
    """The dev folder's clips without phone labels (other languages, singing)."""
    folder = shared / "speech" / "dev"
    return [Clip(path.stem, load_audio(path, SAMPLE_RATE)[0], None, path.stem)
            for path in sorted(folder.glob("*.flac")) if not (folder / f"{path.stem}.phones.lab").exists()]


def tts_clips(shared: Path) -> tuple[list[Clip], str | None]:
    """Set (c): the first TTS_PROMPTS held-out prompts read by each held-out voice of training.corpus.voices
    (flite rms, festival ked: no corpus may use them), with the engines' own phone timings; (clips, note)."""
    from training.corpus.voices import engine_available, heldout_voices, synthesise_many, voice
    folder = shared / "speech" / "kathleen"
    prompts = {}
    for text_path in sorted(folder.glob("*.txt")):
        prompt = prompt_id(text_path.stem)
        if prompt and is_heldout(text_path.stem) and prompt not in prompts and len(prompts) < TTS_PROMPTS:
            prompts[prompt] = text_path.read_text(encoding="utf-8").strip()
    engines = sorted({voice(voice_id).engine for voice_id in heldout_voices()})
    missing = [engine for engine in engines if not engine_available(engine)]
    if missing:
        return [], f"{', '.join(missing)} not installed (apt-get install flite festival festvox-kdlpc16k festlex-cmu)"
    clips = []
    for voice_id in heldout_voices():
        for prompt, (audio, timeline) in zip(prompts, synthesise_many(list(prompts.values()), voice_id)):
            name = f"{voice_id.replace(':', '_')}_{prompt}"
            clips.append(Clip(name, audio, timeline, name))
    return clips, None


def condition_clips(clips: list[Clip], condition: str) -> list[Clip]:
    """Copies of `clips` through one backend.audio_conditions condition (seeded per clip)."""
    return [Clip(f"{clip.name}+{condition}", audio_conditions.apply(clip.audio, SAMPLE_RATE, condition, seed=index),
                 clip.timeline, clip.source) for index, clip in enumerate(clips)]


def long_takes(clips: list[Clip], min_seconds: float = LONG_TAKE_S, takes: int = 2) -> list[Clip]:
    """Held-out utterances joined in order with JOIN_PAUSE_S of silence into `takes` takes >= min_seconds."""
    joined, position = [], 0
    for number in range(takes):
        audio, timeline, offset = [], [], 0.0
        while offset < min_seconds and position < len(clips):
            clip = clips[position]
            position += 1
            timeline += [(start + offset, end + offset, label) for start, end, label in clip.timeline]
            audio.append(clip.audio)
            offset += len(clip.audio) / SAMPLE_RATE
            if timeline[-1][1] < offset:
                timeline.append((timeline[-1][1], offset, SILENCE))
            audio.append(np.zeros(int(JOIN_PAUSE_S * SAMPLE_RATE), dtype=np.float32))
            timeline.append((offset, offset + JOIN_PAUSE_S, SILENCE))
            offset += JOIN_PAUSE_S
        if offset < min_seconds:
            break
        name = f"long_take_{number + 1}"
        joined.append(Clip(name, np.concatenate(audio), timeline, name))
    return joined


# --- rows ------------------------------------------------------------------------------------------------
class Rows:
    """Makes each row's (T, 5023, 3) animation of a clip: generators and the reference rows."""

    def __init__(self, names, template: np.ndarray, rig: FlameRig, models_dir=None):
        self.template, self.rig = template, rig
        self._basis = ShapeBasis.build(rig) if any(name.endswith(REBUILT) for name in names) else None
        bases = dict.fromkeys(name.removesuffix(REBUILT).removesuffix(UNGUARDED) for name in names)
        self.generators = {name: load_generator(name, models_dir) for name in bases if name not in REFERENCE_ROWS}
        self._reference_gaps = {}
        self._last = (None, None)   # (row, clip name) -> vertices of the last row made (its rebuilt row reuses it)

    def reference(self, clip: Clip, n_frames: int) -> np.ndarray:
        return phone_checks.rig_from_labels(self.rig, clip.timeline, n_frames, MESH_FPS)

    def reference_gap(self, clip: Clip, n_frames: int) -> np.ndarray:
        """The rig-from-labels lip gap, cached per base clip (condition copies share their source's)."""
        key = (clip.source, n_frames)
        if key not in self._reference_gaps:
            self._reference_gaps[key] = lip_distance_curve(self.reference(clip, n_frames))
        return self._reference_gaps[key]

    def animate(self, name: str, clip: Clip, n_frames: int) -> np.ndarray:
        if name.endswith(REBUILT):
            base = name.removesuffix(REBUILT)
            key = (base, clip.name)
            vertices = self._last[1] if self._last[0] == key else self._animate(base, clip, n_frames)
            return self._basis.rebuild(solve_clip(vertices, self._basis))
        vertices = self._animate(name, clip, n_frames)
        self._last = ((name, clip.name), vertices)
        return vertices

    def _animate(self, name: str, clip: Clip, n_frames: int) -> np.ndarray:
        if name in self.generators:
            return self.generators[name].animate(clip.audio, SAMPLE_RATE, self.template)
        if name.removesuffix(UNGUARDED) in self.generators:
            return self.generators[name.removesuffix(UNGUARDED)].animate(clip.audio, SAMPLE_RATE, self.template,
                                                                          lip_closure=False)
        controls = np.zeros((n_frames, len(CONTROLS)))
        if name == "rig":
            return self.reference(clip, n_frames)
        if name == "rig_other_labels":
            return phone_checks.rig_from_labels(self.rig, clip.other_timeline, n_frames, MESH_FPS)
        if name == "rig_shift2":
            rig = self.reference(clip, n_frames)
            return np.concatenate([np.repeat(rig[:1], SHIFT_FRAMES, axis=0), rig[:-SHIFT_FRAMES]])
        if name == "static_rest":
            return np.repeat(self.template[None].astype(np.float64), n_frames, axis=0)
        if name == "static_open":
            controls[:, CONTROLS.index("jaw")] = JAW_PER_OPENNESS * 0.6    # a mid vowel (AH)
        elif name == "loudness_jaw":
            controls[:, CONTROLS.index("jaw")] = JAW_PER_OPENNESS * loudness(clip.audio, n_frames)
        else:
            raise BackendError(f"unknown row {name!r}")
        return self.rig.animate(controls)

    def seam_frames(self, name: str, num_samples: int) -> np.ndarray:
        """Frames where a generator's context changes: its local-attention block boundaries and the middle of
        each crossfade between its 20 s chunks; for a reference row, the first generator's (so the rig shows
        what a seamless curve scores there)."""
        blocks = {key: generator.info.metadata.get("config", {}).get("attention_block")
                  for key, generator in self.generators.items()}
        block = blocks.get(name.removesuffix(UNGUARDED)) or next((block for block in blocks.values() if block), None)
        n_frames = frame_count(num_samples)
        attention = np.arange(block, n_frames, block) if block else np.zeros(0, dtype=int)
        crossfades = [round((start + OVERLAP_SAMPLES / 2) * MESH_FPS / SAMPLE_RATE)
                      for start in chunk_starts(num_samples)[1:]]
        return np.unique(np.concatenate([attention, np.asarray(crossfades, dtype=int)])).astype(int)


def loudness(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """(n_frames,) frame RMS over the clip's 95th percentile, clipped to 0..1."""
    hop = SAMPLE_RATE // MESH_FPS
    padded = np.pad(np.asarray(audio, dtype=np.float64), (0, max(hop * n_frames - len(audio), 0)))
    level = np.sqrt(np.mean(padded[: hop * n_frames].reshape(n_frames, hop) ** 2, axis=1))
    return np.clip(level / max(np.percentile(level, 95), 1e-9), 0.0, 1.0)


def seam_checks(vertices: np.ndarray, timeline, boundaries: np.ndarray, rig: FlameRig) -> dict:
    """Closure and rest within SEAM_WINDOW_S of each seam frame, and the lip-gap step there vs elsewhere."""
    gap = lip_distance_curve(vertices)
    boundaries = boundaries[(boundaries > 0) & (boundaries < len(gap))]
    times = np.arange(len(gap)) / MESH_FPS
    near = np.zeros(len(gap), dtype=bool)
    for boundary in boundaries:
        near |= np.abs(np.arange(len(gap)) - boundary) <= SEAM_WINDOW_S * MESH_FPS
    shut = phone_checks.rest_gap(rig.template) + phone_checks.CLOSED_ABOVE_REST_M
    middles = [int(np.argmin(np.abs(times - (start + end) / 2))) for start, end, label in timeline
               if label in BILABIALS and start < times[-1]]
    near_middles = [frame for frame in middles if near[frame]]
    pauses = [frame for frame in phone_checks.pause_frames(timeline, len(gap), MESH_FPS) if near[frame]]
    steps = np.abs(np.diff(gap))
    return {"boundaries": len(boundaries), "bilabials_near": len(near_middles),
            "closure_near": float(np.mean(gap[near_middles] <= shut)) if near_middles else None,
            "pause_frames_near": len(pauses), "rest_near": float(np.mean(gap[pauses] <= shut)) if pauses else None,
            "step_ratio": float(steps[boundaries - 1].mean() / max(steps.mean(), 1e-12)) if len(boundaries) else None}


# --- output ----------------------------------------------------------------------------------------------
def plot_clip(path: Path, clip: Clip, curves: dict, reference_gap, rest_m: float, title: str) -> None:
    """Each model's lip gap (mm) against the rig curve, the shut threshold, phone labels under the plot."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot
    seconds = len(clip.audio) / SAMPLE_RATE
    figure, (top, labels) = pyplot.subplots(2, 1, figsize=(min(4 + 2.2 * seconds, 60), 4.2), sharex=True,
                                            gridspec_kw={"height_ratios": [5, 1]})
    for name, gap in curves.items():
        top.plot(np.arange(len(gap)) / MESH_FPS, gap * 1000, linewidth=1.0, label=name)
    if reference_gap is not None:
        top.plot(np.arange(len(reference_gap)) / MESH_FPS, reference_gap * 1000, color="black", linewidth=2.0,
                 label="rig from labels (phone-timed openness)")
    top.axhline((rest_m + phone_checks.CLOSED_ABOVE_REST_M) * 1000, color="grey", linestyle="--", linewidth=0.8,
                label="shut / rest threshold (rest gap + 1 mm)")
    top.set_ylabel("lip gap (mm)")
    top.legend(fontsize=7, loc="upper right", ncol=2)
    top.set_title(title, fontsize=9)
    for start, end, label in clip.timeline or []:
        colour = "red" if label in BILABIALS else ("0.6" if label == SILENCE else "black")
        if label == SILENCE:
            labels.axvspan(start, end, color="0.92")
            top.axvspan(start, end, color="0.95")
        labels.axvline(start, color="0.8", linewidth=0.4)
        labels.text((start + end) / 2, 0.5, label, ha="center", va="center", fontsize=6, color=colour, rotation=90)
    labels.set_yticks([])
    labels.set_xlabel("seconds")
    labels.set_xlim(0, seconds)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=80, format="png")
    pyplot.close(figure)


def render_closeups(path: Path, items, faces, title: str) -> None:
    """A grid of lip close-ups: one column per (label, time, {row: frame vertices}) item, one line per row."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    from backend.flame import LOWER_LIP_CENTRE, UPPER_LIP_CENTRE
    from training.corpus.render import rasterise
    names = list(items[0][2])
    figure, axes = pyplot.subplots(len(names), len(items), figsize=(2.2 * len(items), 2.4 * len(names)), squeeze=False)
    for column, (label, when, frames) in enumerate(items):
        for row, name in enumerate(names):
            mesh = frames[name]
            lips = 0.5 * (mesh[UPPER_LIP_CENTRE] + mesh[LOWER_LIP_CENTRE])
            gap = np.linalg.norm(mesh[UPPER_LIP_CENTRE] - mesh[LOWER_LIP_CENTRE]) * 1000
            axis = axes[row, column]
            axis.imshow(rasterise(mesh, faces, (lips[0], lips[1]), 0.03, 160))
            axis.set_title(f"{name}\n{label} {when:.2f} s, gap {gap:.1f} mm", fontsize=7)
            axis.axis("off")
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=80, format="png")
    pyplot.close(figure)


def _fmt(value, digits=2, percent=False) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.0f} %" if percent else f"{value:.{digits}f}"


def markdown_table(rows: list[dict]) -> str:
    lines = ["| model | set | clips | closure | mid-bilabial gap mm | rest | pause gap mm | openness ρ | lag (frames) "
             "| MTM median ms | MTM mean ms | /f v/ contact | jaw range mm | seams: closure / rest / step ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        summary, seams = row["summary"], row.get("seams")
        seam_text = "" if not seams else (f"{_fmt(seams['closure_near'], percent=True)} / "
                                          f"{_fmt(seams['rest_near'], percent=True)} / {_fmt(seams['step_ratio'])}")
        lines.append(
            f"| {row['model']} | {row['set']} | {summary['clips']} | {_fmt(summary.get('closure'), percent=True)} "
            f"| {_fmt(summary.get('mid_bilabial_gap_mm'), 1)} | {_fmt(summary.get('rest'), percent=True)} "
            f"| {_fmt(summary.get('pause_gap_mm'), 1)} | {_fmt(summary.get('openness_rho'))} "
            f"| {_fmt(summary.get('lag_frames'), 1)} | {_fmt(summary.get('mtm_median_ms'), 0)} "
            f"| {_fmt(summary.get('mtm_ms'), 0)} | {_fmt(summary.get('contact'), percent=True)} "
            f"| {_fmt(summary.get('jaw_range_mm'), 1)} | {seam_text} |")
    return "\n".join(lines)


# --- run -------------------------------------------------------------------------------------------------
def build_sets(wanted: str, shared: Path) -> tuple[list, dict]:
    """[(set label, clips, audio-driven rows only?)] in order, and notes on anything left out."""
    notes, groups = {}, []
    heldout = heldout_clips(shared) if any(key in wanted for key in "ade") else []
    dev = dev_clips(shared) if any(key in wanted for key in "bd") else []
    if "a" in wanted:
        groups.append(("a: Kathleen held-out", _paired(heldout), False))
    if "b" in wanted:
        groups.append(("b: unseen real speakers", _paired(dev), False))
    if "c" in wanted:
        tts, missing = tts_clips(shared)
        if missing:
            notes["c"] = f"set (c) not run: {missing}"
        else:
            groups.append(("c: unseen TTS voices", _paired(tts), False))
    if "d" in wanted:
        for base, clips in (("a", heldout), ("b", dev)):
            for condition in audio_conditions.CONDITIONS:
                groups.append((f"d: {base} + {condition}", condition_clips(clips, condition), True))
    if "e" in wanted:
        groups.append(("e: long takes", _paired(long_takes(heldout)), False))
    if "u" in wanted:
        groups.append(("u: unlabelled", unlabelled_clips(shared), True))
    return groups, notes


def run_benchmark(sets: str, models: list, out: Path, shared: Path, show_progress=None, models_dir=None) -> dict:
    started = time.monotonic()
    mesh = load_flame_mesh(shared / "flame" / "FLAME_sample.ply")
    regions = FlameRegions.load(shared / "flame" / "FLAME_masks.npz")
    rig = FlameRig(mesh.vertices, mesh.faces, regions.masks)
    rows_maker = Rows(models, mesh.vertices, rig, models_dir)
    rest_m = phone_checks.rest_gap(mesh.vertices)
    groups, notes = build_sets(sets, shared)
    for folder in ("plots", "closeups", "strips"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    def runs_on(name: str, audio_only: bool) -> bool:
        base = name.removesuffix(REBUILT).removesuffix(UNGUARDED)
        return not audio_only or base not in REFERENCE_ROWS or base in AUDIO_DRIVEN_REFERENCES

    total = sum(len(clips) * sum(runs_on(name, audio_only) for name in models) for _, clips, audio_only in groups)
    results, closeups = [], []
    with Progress(total, "real-speech benchmark", enabled=show_progress) as bar:
        for label, clips, audio_only in groups:
            names = [name for name in models if runs_on(name, audio_only)]
            per_model = {name: [] for name in names}
            seams = {name: [] for name in names}
            set_key = label.split(":")[0]
            plot_folder = out / "plots" / label.replace(": ", "_").replace(" + ", "+").replace(" ", "_")
            for index, clip in enumerate(clips):
                n_frames = frame_count(len(clip.audio))
                reference_gap = rows_maker.reference_gap(clip, n_frames) if clip.timeline else None
                curves = {}
                for name in names:
                    vertices = rows_maker.animate(name, clip, n_frames)
                    if clip.timeline:
                        checks = phone_checks.check_clip(vertices, clip.timeline, rig, MESH_FPS, reference_gap).as_dict()
                        if set_key == "e":
                            seams[name].append(seam_checks(vertices, clip.timeline,
                                                           rows_maker.seam_frames(name, len(clip.audio)), rig))
                    else:
                        checks = phone_checks.check_unlabelled(vertices, clip.audio, SAMPLE_RATE, rig, MESH_FPS)
                    per_model[name].append({"clip": clip.name, **checks})
                    if name not in REFERENCE_ROWS or not rows_maker.generators:
                        curves[name] = lip_distance_curve(vertices)
                    if name == DEFAULT_GENERATOR and clip.timeline and set_key == "b" and len(closeups) < CLOSEUPS:
                        closeups += _bilabial_frames(clip, vertices, rows_maker, n_frames, CLOSEUPS - len(closeups))
                    if name == DEFAULT_GENERATOR and not clip.timeline:
                        _strip(out / "strips" / f"{clip.name}.png", clip, vertices, mesh.faces)
                    bar.update()
                if set_key in "bcu" or index < PLOTTED_PER_SET:
                    plot_folder.mkdir(parents=True, exist_ok=True)
                    plot_clip(plot_folder / f"{clip.name}.png", clip, curves, reference_gap, rest_m,
                              f"{label}: {clip.name} ({len(clip.audio) / SAMPLE_RATE:.1f} s)")
            for name in names:
                row = {"model": name, "set": label, "summary": phone_checks.summarise(per_model[name]),
                       "clips": per_model[name]}
                if seams[name]:
                    row["seams"] = _pool_seams(seams[name])
                    row["seam_clips"] = seams[name]
                results.append(row)
    if closeups:
        render_closeups(out / "closeups" / "bilabials_set_b.png", closeups, mesh.faces,
                        f"{DEFAULT_GENERATOR} vs the rig from labels at /p b m/ middles (set b, unseen speakers)")
    seconds = time.monotonic() - started
    report = {"benchmark": "real_speech", "sets": sets, "models": models, "seconds": round(seconds, 1),
              "rest_gap_mm": rest_m * 1000, "notes": notes, "meanings": phone_checks.MEANINGS, "rows": results}
    table = markdown_table(results)
    note_text = "".join(f"\n- {note}" for note in notes.values())
    write_text(out / "real_speech.md", f"# Real-speech sync benchmark\n\nrun time {seconds:.0f} s; rest gap "
                      f"{rest_m * 1000:.2f} mm{note_text}\n\n{table}\n")
    write_text(out / "real_speech.json", json.dumps(report, indent=1) + "\n")
    return report


def _bilabial_frames(clip: Clip, vertices, rows_maker: Rows, n_frames: int, count: int) -> list:
    """Up to `count` (label, time, {model, rig} frame) items at the middles of the clip's /p b m/ (one per clip)."""
    rig = rows_maker.reference(clip, n_frames)
    for start, end, label in clip.timeline:
        frame = int(round((start + end) / 2 * MESH_FPS))
        if label in BILABIALS and frame < n_frames:
            frames = {DEFAULT_GENERATOR: vertices[frame], "rig": rig[frame]}
            return [(f"{clip.name[-5:]} /{label}/", frame / MESH_FPS, frames)][:count]
    return []


def _strip(path: Path, clip: Clip, vertices, faces, count: int = 8) -> None:
    frames = np.linspace(0, len(vertices) - 1, count + 2)[1:-1].astype(int)
    items = [("frame", frame / MESH_FPS, {DEFAULT_GENERATOR: vertices[frame]}) for frame in frames]
    render_closeups(path, items, faces, f"{DEFAULT_GENERATOR} on {clip.name} (unlabelled)")


def _pool_seams(seams: list) -> dict:
    def mean(key):
        values = [item[key] for item in seams if item[key] is not None]
        return float(np.mean(values)) if values else None
    return {"boundaries": sum(item["boundaries"] for item in seams), "closure_near": mean("closure_near"),
            "rest_near": mean("rest_near"), "step_ratio": mean("step_ratio")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default="abcdeu", help="which sets, e.g. 'b' or 'a,b,e' (default all: a b c d e u)")
    parser.add_argument("--models", help="comma-separated rows: generator names and/or "
                        f"{', '.join(REFERENCE_ROWS)} (default: every shipped generator and every reference row)")
    parser.add_argument("--rebuilt", action="store_true", help=f"add a <row>{REBUILT} row after every generator "
                        "row and the rig row: the clip solved into the add-on's shape-key basis and rebuilt")
    parser.add_argument("--unguarded", action="store_true", help=f"add a <generator>{UNGUARDED} row after every "
                        "generator row: the same generator with the lip closure guard off")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "real_speech", help="output folder")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared data folder (../shared)")
    args = parser.parse_args(argv)
    sets = "".join(key for key in args.sets.replace(",", "") if key in SETS)
    unknown_sets = set(args.sets.replace(",", "")) - set(SETS)
    available = [info.name for info in list_generators()]
    models = args.models.split(",") if args.models else available + list(REFERENCE_ROWS)
    unknown = [name for name in models if name not in available and name not in REFERENCE_ROWS]
    if args.rebuilt:
        models = [row for name in models for row in
                  ([name, name + REBUILT] if name in available or name == "rig" else [name])]
    if args.unguarded:
        models = [row for name in models for row in ([name, name + UNGUARDED] if name in available else [name])]
    if unknown or unknown_sets or not sets:
        print(f"unknown sets {sorted(unknown_sets)} or rows {unknown}; sets: {', '.join(SETS)}; rows: "
              f"{', '.join(available + list(REFERENCE_ROWS))}", file=sys.stderr)
        return 2
    report = run_benchmark(sets, models, args.out, args.shared)
    print(markdown_table(report["rows"]))
    for note in report["notes"].values():
        print(note)
    print(f"\n{report['seconds']:.0f} s; wrote {args.out / 'real_speech.md'} and real_speech.json, plots/, "
          "closeups/, strips/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
