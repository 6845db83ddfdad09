"""Build a SYNTHETIC speech-mesh corpus (presets `ci`, `small`, `full`): many voices, real speech, pauses.

    <out>/manifest.json              {"synthetic": true, "store": "controls", fps, sample_rate, preset, seed,
                                      builder_version, clips: [...], subjects: {...}, stats: {...}}  (written last)
    <out>/wav/<id>.wav               16 kHz mono PCM16
    <out>/controls_npy/<id>.npy      (T, 7) float16 rig controls at 30 fps (decoded to vertices on read)
    <out>/templates/<subject>.npz    key "vertices": (5023, 3) float32
    <out>/rig/faces.npy, masks.npz   what the rig needs besides a template (backend.datasets.corpus)
    <out>/records/<id>.json          one clip's manifest entry and measures: its done-marker, written last
    <out>/plan.json                  what is being built (preset, seed, version, a hash of every clip's spec)
    <out>/stats.png                  hours per voice and phone coverage

Sources: every shared Kathleen recording except the benchmark's held-out prompts (backend.heldout), alone
and joined into passages with real pauses; and every TTS training voice (training.corpus.voices: espeak-ng
accents x variants, flite awb/slt/kal16, festival slt_hts/kal, piper joe) reading ARCTIC prompts (the
Kathleen transcripts, held-out prompts excluded), alone and as 10-30 s passages (training.corpus.passages);
plus non-speech clips. Every clip gets random leading and trailing silence and a noise floor.

Clip ids follow the MEAD-3D naming: `<subject>_<source>_level_<n>_<sentence>`. Splits are by speaker AND
by prompt (val/test subjects speak only val/test prompts, which no train clip uses).

The build runs its jobs (a few clips of one voice each) on `workers` processes; each clip's files are
written atomically and its record last, so a rerun after a kill skips finished clips and never keeps a
half-written one. A clip's content depends only on (seed, its plan), so the same seed gives the same bytes
whatever the number of workers and however often the build was interrupted.
"""

import hashlib
import json
import os
import shutil
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import soundfile

from backend.atomic import atomic_path, write_json, write_npy, write_npz
from backend.audio import load_audio, to_int16
from backend.datasets.corpus import (CONTROL_STORE, CONTROLS_DIR, MANIFEST_FILE, RIG_DIR, RIG_FACES_FILE,
                                     RIG_MASKS_FILE, TEMPLATES_DIR)
from backend.errors import AudioError
from backend.flame import FlameRegions
from backend.frame_rate import MESH_FPS
from backend.heldout import is_dev_folder, is_heldout, prompt_id
from backend.mesh import load_flame_mesh
from backend.progress import Progress
from backend.rig.coarticulation import ArticulationStyle, control_curves
from backend.rig.flame_rig import FlameRig
from backend.rig.timeline import read_lab
from training.corpus.intensity import ARTICULATION_GAIN, LEVELS, recorded_effort
from training.corpus.passages import assemble_passage, non_speech_clip
from training.corpus.paths import SPEECH_ENV, default_paths
from training.corpus.speakers import ESPEAK_ACCENTS, ESPEAK_VARIANTS, identity_template, make_speakers
from training.corpus.stats import clip_measures, plot_stats, stats_table, summarise
from training.corpus.voices import require_training_voice, synthesise_many

BUILDER_VERSION = "2.0"
SAMPLE_RATE = 16000
SPLITS = ("train", "val", "test")
PROMPT_SHARE = {"train": 0.8, "val": 0.1, "test": 0.1}
KATHLEEN = "kathleen"
NON_SPEECH = "nonspeech"
TTS_SOURCES = ("espeak", "flite:awb", "flite:slt", "flite:kal16", "festival:slt_hts", "festival:kal", "piper:joe")
JOB_ITEMS = 8                    # items per job: festival starts once per job (about a second)
RATE_RANGE = (0.88, 1.12)        # TTS speaking-rate factor per job (festival's HTS voice speaks at 1 only)
FIXED_RATE_VOICES = ("festival:slt_hts",)
SENTENCE_S_PER_PROMPT = 2.6      # rough length of a spoken ARCTIC prompt: how many a passage needs
NON_SPEECH_S = (2.0, 8.0)
RECORDS_DIR = "records"
PLAN_FILE = "plan.json"
STATS_PLOT = "stats.png"
CORPUS_FOLDERS = ("wav", CONTROLS_DIR, TEMPLATES_DIR, RIG_DIR, RECORDS_DIR, "vertices_npy")   # v1 had vertices_npy
CORPUS_FILES = (MANIFEST_FILE, PLAN_FILE, STATS_PLOT)


@dataclass(frozen=True)
class Preset:
    """Corpus size. Per source: (sentences, passages) items, split 80/10/10 by prompt; kathleen sentences
    None = every recording. levels 3: each item at all three intensity levels, 1: at one random level."""

    name: str
    subjects: dict                 # split -> number of subjects
    kathleen: tuple                # (sentences or None for all, passages)
    tts: dict                      # TTS source -> (sentences, passages); "espeak" draws accent+variant per item
    non_speech: int
    levels: int
    passage_s: tuple = (10.0, 30.0)
    max_sentence_s: float | None = None   # only recordings up to this long (None: all)
    tags: dict = field(default_factory=dict)


def _tts(sentences, passages, espeak=None):
    counts = {source: (sentences, passages) for source in TTS_SOURCES if source != "espeak"}
    return {"espeak": espeak or (sentences, passages), **counts}


PRESETS = {
    "ci": Preset("ci", {"train": 3, "val": 1, "test": 1}, (6, 1), _tts(0, 1, espeak=(6, 1)), 1, 3,
                 passage_s=(6.0, 9.0), max_sentence_s=3.0),
    "small": Preset("small", {"train": 8, "val": 2, "test": 2}, (260, 30), _tts(32, 5, espeak=(160, 22)), 12, 1),
    "full": Preset("full", {"train": 16, "val": 2, "test": 2}, (None, 150), _tts(150, 22, espeak=(700, 120)), 60, 1),
}


# --- inputs ------------------------------------------------------------------------------------------------
def list_utterances(speech_dir: Path, max_seconds: float | None = None) -> list[tuple[str, str]]:
    """(utterance id, transcript) of the folder's utterances with audio, transcript and phones (<= max_seconds
    when given); never a held-out prompt (backend.heldout), and never the unseen-speaker folder."""
    if is_dev_folder(speech_dir):
        raise AudioError(f"{speech_dir}: this is the unseen-speaker folder kept for evaluation; no corpus may "
                         "train on it (pass another --speech folder)")
    if not speech_dir.is_dir():
        raise AudioError(f"{speech_dir}: recorded-speech folder not found; expected <id>.flac, <id>.txt and "
                         f"<id>.phones.lab files (pass --speech or set ${SPEECH_ENV})")
    utterances = []
    for lab in sorted(speech_dir.glob("*.phones.lab")):
        name = lab.name[: -len(".phones.lab")]
        if is_heldout(name):
            continue
        text = speech_dir / f"{name}.txt"
        if (speech_dir / f"{name}.flac").is_file() and text.is_file():
            last_line = lab.read_text(encoding="utf-8").strip().splitlines()[-1:]
            if last_line and (max_seconds is None or float(last_line[0].split()[1]) <= max_seconds):
                utterances.append((name, text.read_text(encoding="utf-8").strip()))
    if not utterances:
        raise AudioError(f"{speech_dir}: no utterance has .flac, .txt and .phones.lab files"
                         f"{'' if max_seconds is None else f' and lasts at most {max_seconds} s'}; expected a "
                         "folder like shared/speech/kathleen")
    return utterances


# --- the plan ------------------------------------------------------------------------------------------------
def _split_counts(count: int) -> dict:
    """Items of one kind per split: 10 % each to val and test (at least one each from 3 items), the rest train."""
    held = max(1, round(PROMPT_SHARE["val"] * count)) if count >= 3 else 0
    return {"train": count - 2 * held, "val": held, "test": held}


def _draw(pool: list, count: int, rng: np.random.Generator) -> list:
    """`count` members of `pool` in random order, without repeats until the pool is used up."""
    drawn = []
    while len(drawn) < count:
        drawn += [pool[index] for index in rng.permutation(len(pool))]
    return drawn[:count]


def plan_clips(preset: Preset, utterances, rng: np.random.Generator) -> tuple[list, list[dict]]:
    """(speakers, clip specs). Each spec is JSON: id, subject, split, level, source, voice, condition,
    sentence, sentences [(kind, id, text)], item (its index: the item's own seed), job, rate, target_s."""
    prompts = {}
    for name, text in utterances:
        prompts.setdefault(prompt_id(name) or name, []).append((name, text))
    order = sorted(prompts)
    order = [order[index] for index in rng.permutation(len(order))]
    cut_val = int(round(PROMPT_SHARE["train"] * len(order)))
    cut_test = cut_val + int(round(PROMPT_SHARE["val"] * len(order)))
    split_prompts = {"train": order[:cut_val], "val": order[cut_val:cut_test], "test": order[cut_test:]}
    speakers = make_speakers(sum(preset.subjects.values()), rng)
    subjects, start = {}, 0
    for split in SPLITS:
        subjects[split] = speakers[start: start + preset.subjects[split]]
        start += preset.subjects[split]
    items = {split: [] for split in SPLITS}     # split -> [(condition, source, [(kind, id, text)], target_s)]
    for split in SPLITS:
        recordings = [(KATHLEEN, name, text) for prompt in split_prompts[split] for name, text in prompts[prompt]]
        spoken = [("prompt", prompt, prompts[prompt][0][1]) for prompt in split_prompts[split]]
        if not recordings:
            raise AudioError(f"preset {preset.name}: the {split} split has no prompts; the speech folder holds "
                             f"only {len(order)} usable prompts")
        kinds = [(KATHLEEN, recordings, preset.kathleen)] + [(source, spoken, counts)
                                                              for source, counts in preset.tts.items()]
        for source, pool, (sentences, passages) in kinds:
            count = len(pool) if sentences is None else _split_counts(sentences)[split]
            for sentence in _draw(pool, count, rng):
                items[split].append(("sentence", source, [sentence], None))
            for _ in range(_split_counts(passages)[split]):
                target = float(rng.uniform(*preset.passage_s))
                items[split].append(("passage", source, _draw(pool, int(target / SENTENCE_S_PER_PROMPT) + 2, rng),
                                     target))
        for _ in range(preset.non_speech if split == "train" else 0):
            items[split].append(("nonspeech", NON_SPEECH, [], float(rng.uniform(*NON_SPEECH_S))))
    clips, used_ids = [], set()
    item_number = 0
    for split in SPLITS:
        for number, (condition, source, sentences, target) in enumerate(_interleave(items[split])):
            speaker = subjects[split][number % len(subjects[split])]
            voice = source
            if source == "espeak":
                voice = (f"espeak:{ESPEAK_ACCENTS[rng.integers(len(ESPEAK_ACCENTS))]}+"
                         f"{ESPEAK_VARIANTS[rng.integers(len(ESPEAK_VARIANTS))]}")
            levels = LEVELS if preset.levels == 3 else (int(rng.choice(LEVELS)),)
            sentence = sentences[0][1] if condition == "sentence" else f"{condition}{item_number:05d}"
            for level in levels:
                tag = voice.replace(":", "-")
                clip_id = f"{speaker.name}_{tag}_level_{level}_{sentence}"
                while clip_id in used_ids:
                    clip_id += "x"
                used_ids.add(clip_id)
                clips.append({"id": clip_id, "subject": speaker.name, "split": split, "level": level,
                              "source": voice.split(":")[0], "voice": voice, "condition": condition,
                              "sentence": sentence, "sentences": [list(entry) for entry in sentences],
                              "item": item_number, "target_s": target,
                              "style": asdict(replace(speaker.style, gain=speaker.style.gain * ARTICULATION_GAIN[level]))})
            item_number += 1
    _assign_jobs(clips, rng)
    return speakers, clips


def _interleave(items: list) -> list:
    """Sentences first, then passages, then non-speech; within each, sources take turns (so the first clips
    of any plan, and of a limited build, mix the sources)."""
    ordered = []
    for condition in ("sentence", "passage", "nonspeech"):
        queues = {}
        for item in items:
            if item[0] == condition:
                queues.setdefault(item[1], []).append(item)
        while any(queues.values()):
            for queue in queues.values():
                if queue:
                    ordered.append(queue.pop(0))
    return ordered


def _assign_jobs(clips: list[dict], rng: np.random.Generator) -> None:
    """Group items of one engine voice into jobs of up to JOB_ITEMS items; each job gets one speaking rate."""
    jobs, by_voice = {}, {}
    for clip in clips:
        key = clip["voice"] if clip["source"] != "espeak" else "espeak"
        members = by_voice.setdefault(key, [])
        if clip["item"] not in members:
            members.append(clip["item"])
    for key in sorted(by_voice, key=lambda name: min(by_voice[name])):
        for first in range(0, len(by_voice[key]), JOB_ITEMS):
            job = len(set(jobs.values()))
            rate = 1.0 if key in FIXED_RATE_VOICES + (KATHLEEN, NON_SPEECH) else round(float(rng.uniform(*RATE_RANGE)), 3)
            for item in by_voice[key][first: first + JOB_ITEMS]:
                jobs[item] = (job, rate)
    for clip in clips:
        clip["job"], clip["rate"] = jobs[clip["item"]]


def check_clip_voices(clips) -> None:
    """AudioError if any planned clip speaks with a voice held out for the benchmark (or an unknown voice),
    or uses a held-out Kathleen prompt."""
    for clip in clips:
        if clip["source"] not in (KATHLEEN, NON_SPEECH):
            require_training_voice(clip["voice"])
        for _, name, _ in clip["sentences"]:
            if is_heldout(name):
                raise AudioError(f"clip {clip['id']}: {name} is a held-out prompt; no corpus may use it")


def plan_hash(preset_name: str, seed: int, clips: list[dict]) -> str:
    text = json.dumps({"preset": preset_name, "seed": seed, "builder_version": BUILDER_VERSION, "clips": clips},
                      sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- the output folder ---------------------------------------------------------------------------------------
def prepare_output(out: Path, force: bool, plan: dict) -> None:
    """Make `out` ready for the build of `plan` (preset, seed, builder_version, hash).

    A finished corpus there (manifest.json) is refused unless `force`, which removes that corpus's own files
    first (never anything else), so no old clip outlives its manifest. An unfinished build of the SAME plan is
    continued (its finished clips are kept); one of another plan is refused unless `force`. A folder holding
    files that are not a corpus's is refused.
    """
    if out.exists() and not out.is_dir():
        raise AudioError(f"{out}: exists and is not a folder; pass a folder for the corpus")
    foreign = sorted(path.name for path in out.iterdir()
                     if path.name not in CORPUS_FOLDERS + CORPUS_FILES) if out.is_dir() else []
    if foreign:
        raise AudioError(f"{out}: holds {', '.join(foreign[:3])}{' …' if len(foreign) > 3 else ''}, which are not "
                         "a corpus's files; build into an empty or new folder")
    existing = _read_plan(out / PLAN_FILE)
    if (out / MANIFEST_FILE).exists():
        if not force:
            raise AudioError(f"{out}: already holds a corpus (manifest.json); pass --force to replace it, or "
                             "build into a new folder")
        _remove_corpus(out)
    elif existing is not None and existing != plan:
        if not force:
            raise AudioError(f"{out}: holds an unfinished build of another corpus (preset {existing.get('preset')}, "
                             f"seed {existing.get('seed')}, builder {existing.get('builder_version')}); pass --force "
                             "to replace it, or build into a new folder")
        _remove_corpus(out)
    elif existing is None:
        _remove_corpus(out)    # folders without a plan: an interrupted build of unknown content
    for folder in CORPUS_FOLDERS[:-1]:
        (out / folder).mkdir(parents=True, exist_ok=True)
    for leftover in [*out.glob(".*.tmp*"), *out.glob("*/.*.tmp*")]:   # a killed build's temporaries (never renamed)
        leftover.unlink()
    write_json(out / PLAN_FILE, plan, indent=1, sort_keys=True)


def _read_plan(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _remove_corpus(out: Path) -> None:
    (out / MANIFEST_FILE).unlink(missing_ok=True)   # first, so an interrupted replacement never looks finished
    for folder in CORPUS_FOLDERS:
        shutil.rmtree(out / folder, ignore_errors=True)
    for name in CORPUS_FILES:
        (out / name).unlink(missing_ok=True)


# --- building ------------------------------------------------------------------------------------------------
def build_corpus(out_dir, preset_name: str = "ci", seed: int = 0, template=None, masks=None, speech=None,
                 limit_clips: int | None = None, show_progress: bool | None = None, force: bool = False,
                 workers: int | None = None) -> dict:
    """Build (or continue building) the corpus into `out_dir`; returns the manifest.

    limit_clips keeps the first N planned clips; force replaces another corpus there (see prepare_output);
    workers: processes (default os.cpu_count(); 1 builds in this process).
    """
    if preset_name not in PRESETS:
        raise AudioError(f"unknown preset {preset_name!r}; expected one of {', '.join(PRESETS)}")
    preset = PRESETS[preset_name]
    template_path, masks_path, speech_dir = default_paths(template, masks, speech)
    mesh = load_flame_mesh(template_path)
    regions = FlameRegions.load(masks_path)
    rng = np.random.default_rng(seed)
    speakers, clips = plan_clips(preset, list_utterances(speech_dir, preset.max_sentence_s), rng)
    clips = clips[:limit_clips] if limit_clips is not None else clips
    check_clip_voices(clips)
    out = Path(out_dir)
    plan = {"preset": preset_name, "seed": seed, "builder_version": BUILDER_VERSION,
            "clips": len(clips), "plan_sha256": plan_hash(preset_name, seed, clips)}
    prepare_output(out, force, plan)
    used = {clip["subject"] for clip in clips}
    speakers = [speaker for speaker in speakers if speaker.name in used]
    base_rig = FlameRig(mesh.vertices, mesh.faces, regions.masks)
    write_npy(out / RIG_DIR / RIG_FACES_FILE, np.asarray(mesh.faces, dtype=np.int32))
    write_npz(out / RIG_DIR / RIG_MASKS_FILE, **regions.masks)
    for speaker in speakers:
        write_npz(out / TEMPLATES_DIR / f"{speaker.name}.npz",
                  vertices=identity_template(mesh.vertices, base_rig.head_size, speaker).astype(np.float32))
    _run_jobs(out, clips, seed, speech_dir, workers or os.cpu_count() or 1, show_progress, preset_name)
    records = [json.loads((out / RECORDS_DIR / f"{clip['id']}.json").read_text(encoding="utf-8")) for clip in clips]
    entries = [record["entry"] for record in records]
    stats = summarise([record["measures"] for record in records], entries)
    plot_stats(stats, out / STATS_PLOT)
    manifest = {"synthetic": True, "description": "SYNTHETIC animation: an articulatory FLAME rig driven by "
                "phoneme timings (not captured motion)", "store": CONTROL_STORE, "fps": MESH_FPS,
                "sample_rate": SAMPLE_RATE, "preset": preset_name, "seed": seed, "builder_version": BUILDER_VERSION,
                "clips": entries, "subjects": {speaker.name: speaker.as_dict() for speaker in speakers},
                "stats": stats, "stats_table": stats_table(stats)}
    write_json(out / MANIFEST_FILE, manifest, indent=1, sort_keys=True)
    return manifest


def _is_done(out: Path, clip_id: str) -> bool:
    return all(path.is_file() for path in (out / RECORDS_DIR / f"{clip_id}.json", out / "wav" / f"{clip_id}.wav",
                                           out / CONTROLS_DIR / f"{clip_id}.npy"))


def _run_jobs(out: Path, clips: list[dict], seed: int, speech_dir: Path, workers: int, show_progress,
              preset_name: str) -> None:
    """Build every clip not yet done, job by job, on `workers` processes (slow engines first)."""
    jobs = {}
    for clip in clips:
        jobs.setdefault(clip["job"], []).append(clip)
    todo = [job for job in jobs.values() if not all(_is_done(out, clip["id"]) for clip in job)]
    todo.sort(key=lambda job: (job[0]["source"] not in ("piper", "festival"), job[0]["job"]))
    context = (str(out), seed, str(speech_dir))
    with Progress(len(clips), f"building {preset_name} corpus", enabled=show_progress) as bar:
        bar.update(len(clips) - sum(len(job) for job in todo))
        if workers <= 1:
            _init_worker(*context)
            for job in todo:
                bar.update(_build_job(job))
            return
        pool = ProcessPoolExecutor(max_workers=min(workers, max(len(todo), 1)), initializer=_init_worker,
                                   initargs=context)
        try:
            pending = {pool.submit(_build_job, job) for job in todo}
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    bar.update(future.result())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)   # on an error: no new job starts, running ones end


_WORKER = {}


def _init_worker(out: str, seed: int, speech_dir: str) -> None:
    """Per process: where to write, the seed, the speech folder and the rig parts (rigs built per subject)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    root = Path(out)
    _WORKER.update(out=root, seed=seed, speech_dir=Path(speech_dir), rigs={},
                   faces=np.load(root / RIG_DIR / RIG_FACES_FILE).astype(np.int64),
                   regions=FlameRegions.load(root / RIG_DIR / RIG_MASKS_FILE))


def _rig(subject: str) -> FlameRig:
    """The subject's rig from the files the reader uses, so decoding gives exactly what was built."""
    rigs = _WORKER["rigs"]
    if subject not in rigs:
        with np.load(_WORKER["out"] / TEMPLATES_DIR / f"{subject}.npz") as archive:
            template = archive["vertices"]
        rigs[subject] = FlameRig(template, _WORKER["faces"], _WORKER["regions"].masks)
    return rigs[subject]


def _build_job(job: list[dict]) -> int:
    """Speak every item of a job (all of it, even on a resumed build: the same input gives the same bytes) and
    write the clips not yet done; returns the number of clips written."""
    out, seed = _WORKER["out"], _WORKER["seed"]
    spoken = _speak(job)
    items = {}
    for clip in job:
        items.setdefault(clip["item"], []).append(clip)
    written = 0
    for item, members in items.items():
        first = members[0]
        item_rng = np.random.default_rng([seed, item])
        if first["condition"] == "nonspeech":
            audio, timeline, kinds = non_speech_clip(item_rng, first["target_s"])
        else:
            sentences = [spoken[(first["voice"], kind, name)] for kind, name, _ in first["sentences"]]
            audio, timeline, kinds = assemble_passage(sentences, item_rng, first["target_s"])
        for clip in members:
            if not _is_done(out, clip["id"]):
                _write_clip(out, clip, recorded_effort(audio, clip["level"]), timeline, kinds, seed)
                written += 1
    return written


def _speak(job: list[dict]) -> dict:
    """{(voice, kind, name): (16 kHz float32 audio, timeline)} for every sentence of the job's clips."""
    wanted = {}
    for clip in job:
        for kind, name, text in clip["sentences"]:
            wanted.setdefault(clip["voice"], {})[(kind, name)] = text
    spoken = {}
    for voice, sentences in wanted.items():
        keys = list(sentences)
        if voice == KATHLEEN:
            speech_dir = _WORKER["speech_dir"]
            for kind, name in keys:
                audio, _ = load_audio(speech_dir / f"{name}.flac", SAMPLE_RATE)
                spoken[(voice, kind, name)] = (audio, read_lab(speech_dir / f"{name}.phones.lab"))
            continue
        results = synthesise_many([sentences[key] for key in keys], voice, job[0]["rate"], _WORKER["seed"])
        for (kind, name), result in zip(keys, results):
            spoken[(voice, kind, name)] = result
    return spoken


def frame_energy(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """(n_frames,) RMS of the audio around each frame time (one frame long window)."""
    hop = SAMPLE_RATE // MESH_FPS
    padded = np.pad(audio.astype(np.float64), (hop // 2, hop * (n_frames + 1)))
    windows = padded[: hop * n_frames].reshape(n_frames, hop)
    return np.sqrt(np.mean(windows ** 2, axis=1))


def _write_clip(out: Path, clip: dict, audio: np.ndarray, timeline, kinds, seed: int) -> None:
    """Animate one clip and write its audio, its float16 controls, then its record (the done-marker)."""
    rig = _rig(clip["subject"])
    style = ArticulationStyle(**clip["style"])
    n_frames = int(round(len(audio) / SAMPLE_RATE * MESH_FPS))
    clip_rng = np.random.default_rng([seed, clip["item"], clip["level"]])
    controls = control_curves(timeline, n_frames, MESH_FPS, rig, style, frame_energy(audio, n_frames), clip_rng)
    stored = controls.astype(np.float16)
    samples = to_int16(audio)
    with atomic_path(out / "wav" / f"{clip['id']}.wav") as temporary:
        soundfile.write(temporary, samples, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    write_npy(out / CONTROLS_DIR / f"{clip['id']}.npy", stored)
    measures = clip_measures(stored.astype(np.float32), samples, timeline, rig, _WORKER["regions"].lips, MESH_FPS)
    entry = {key: clip[key] for key in ("id", "subject", "split", "level", "source", "voice", "condition",
                                        "sentence", "rate", "style")}
    entry.update(sentences=[name for _, name, _ in clip["sentences"]], pauses=kinds,
                 duration_s=round(len(audio) / SAMPLE_RATE, 4), frames=n_frames,
                 timeline=[[start, end, label] for start, end, label in timeline])
    write_json(out / RECORDS_DIR / f"{clip['id']}.json", {"entry": entry, "measures": measures}, indent=None,
               sort_keys=True)
