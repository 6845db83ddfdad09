"""Build a SYNTHETIC speech-mesh corpus (presets `ci` and `full`) in the converted VOCASET layout.

    <out>/manifest.json              {"synthetic": true, fps, sample_rate, preset, seed, builder_version,
                                      clips: [...], subjects: {...}, stats: {...}}
    <out>/wav/<id>.wav               16 kHz mono PCM16
    <out>/vertices_npy/<id>.npy      (T, 15069) float32, 30 fps, metres, absolute positions
    <out>/templates/<subject>.npz    key "vertices": (5023, 3) float32

Clip ids follow the MEAD-3D naming: `<subject>_<source>_level_<n>_<sentence>`. Splits are by speaker
AND by sentence (val/test subjects speak only val/test sentences, which no train clip uses). Every file
is written atomically; the manifest is written last (an interrupted build leaves none), and the same
seed gives identical bytes.
"""

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile

from backend.atomic import atomic_path, write_json, write_npy, write_npz
from backend.audio import load_audio, resample, to_int16
from backend.errors import AudioError
from backend.flame import FlameRegions
from backend.frame_rate import MESH_FPS
from backend.heldout import is_dev_folder, is_heldout
from backend.mesh import load_flame_mesh
from backend.progress import progress
from backend.rig.coarticulation import control_curves
from backend.rig.flame_rig import FlameRig
from backend.rig.timeline import read_lab
from training.corpus.espeak import EspeakSynth
from training.corpus.intensity import ARTICULATION_GAIN, LEVELS, espeak_settings, recorded_effort
from training.corpus.paths import SPEECH_ENV, default_paths
from training.corpus.speakers import Speaker, identity_template, make_speakers
from training.corpus.stats import clip_measures, summarise
from training.corpus.voices import require_training_voice

BUILDER_VERSION = "1.0"
SAMPLE_RATE = 16000
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Preset:
    """Corpus size: subjects and sentences per subject for each split; every sentence at all 3 levels."""

    name: str
    subjects: dict           # split -> number of subjects
    sentences: dict          # split -> sentences per subject (half recorded, half espeak)
    max_sentence_s: float    # only utterances up to this long are used


PRESETS = {
    "ci": Preset("ci", {"train": 3, "val": 1, "test": 1}, {"train": 4, "val": 2, "test": 2}, 3.0),
    "full": Preset("full", {"train": 8, "val": 2, "test": 2}, {"train": 20, "val": 8, "test": 8}, 6.0),
}


def list_utterances(speech_dir: Path, max_seconds: float) -> list[tuple[str, str]]:
    """(utterance id, transcript) of the folder's utterances with audio, transcript and phones, <= max_seconds;
    never a held-out prompt (backend.heldout), and never the unseen-speaker folder."""
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
            if last_line and float(last_line[0].split()[1]) <= max_seconds:
                utterances.append((name, text.read_text(encoding="utf-8").strip()))
    if not utterances:
        raise AudioError(f"{speech_dir}: no utterance has .flac, .txt and .phones.lab files and lasts at most "
                         f"{max_seconds} s; expected a folder like shared/speech/kathleen")
    return utterances


def plan_clips(preset: Preset, utterances, rng: np.random.Generator) -> tuple[list[Speaker], list[dict]]:
    """Speakers and clip specs; sentence pools per split are disjoint, and so are the split's speakers."""
    order = rng.permutation(len(utterances))
    speakers = make_speakers(sum(preset.subjects.values()), rng)
    clips, next_sentence, next_speaker = [], 0, 0
    for split in SPLITS:
        subjects = speakers[next_speaker: next_speaker + preset.subjects[split]]
        next_speaker += len(subjects)
        per_subject = preset.sentences[split]
        pool_size = per_subject * (len(subjects) if split == "train" else 1)   # train subjects differ
        pool = [utterances[index] for index in order[next_sentence: next_sentence + pool_size]]
        next_sentence += pool_size
        if len(pool) < pool_size:
            raise AudioError(f"preset {preset.name} needs {next_sentence} utterances of at most "
                             f"{preset.max_sentence_s} s; the speech folder has {len(utterances)}")
        for number, speaker in enumerate(subjects):
            chosen = pool[number * per_subject: (number + 1) * per_subject] if split == "train" else pool
            for position, (sentence, text) in enumerate(chosen):
                source = "kathleen" if position % 2 == 0 else "espeak"
                for level in LEVELS:
                    clips.append({"id": f"{speaker.name}_{source}_level_{level}_{sentence}", "subject": speaker.name,
                                  "sentence": sentence, "text": text, "level": level, "split": split,
                                  "source": source, "voice": "kathleen" if source == "kathleen" else speaker.voice})
    return speakers, clips


def check_clip_voices(clips) -> None:
    """AudioError if any planned clip speaks with a voice held out for the benchmark (or an unknown voice)."""
    for clip in clips:
        if clip["source"] != "kathleen":
            require_training_voice(f"{clip['source']}:{clip['voice']}")


def clip_speech(clip: dict, speaker: Speaker, speech_dir: Path, synth: EspeakSynth):
    """(float32 audio at 16 kHz, timeline) of a clip at its intensity level."""
    if clip["source"] == "kathleen":
        audio, _ = load_audio(speech_dir / f"{clip['sentence']}.flac", SAMPLE_RATE)
        timeline = read_lab(speech_dir / f"{clip['sentence']}.phones.lab")
        return recorded_effort(audio, clip["level"]), timeline
    settings = espeak_settings(clip["level"], speaker.rate_wpm, speaker.pitch, speaker.pitch_range)
    audio, timeline = synth.synthesise(clip["text"], speaker.voice, **settings)
    return resample(audio, synth.sample_rate, SAMPLE_RATE).astype(np.float32), timeline


def frame_energy(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """(n_frames,) RMS of the audio around each frame time (one frame long window)."""
    hop = SAMPLE_RATE // MESH_FPS
    padded = np.pad(audio.astype(np.float64), (hop // 2, hop * (n_frames + 1)))
    windows = padded[: hop * n_frames].reshape(n_frames, hop)
    return np.sqrt(np.mean(windows ** 2, axis=1))


CORPUS_FOLDERS = ("wav", "vertices_npy", "templates")


def prepare_output(out: Path, force: bool) -> None:
    """Make `out` ready for a build. A finished corpus there (manifest.json) is refused unless `force`, which
    removes that corpus's own files first (never anything else), so no old clip outlives its manifest; a folder
    holding files that are not a corpus's is refused; an unfinished build of ours is rebuilt."""
    if out.exists() and not out.is_dir():
        raise AudioError(f"{out}: exists and is not a folder; pass a folder for the corpus")
    foreign = sorted(path.name for path in out.iterdir()
                     if path.name not in CORPUS_FOLDERS + ("manifest.json",)) if out.is_dir() else []
    if foreign:
        raise AudioError(f"{out}: holds {', '.join(foreign[:3])}{' …' if len(foreign) > 3 else ''}, which are not "
                         "a corpus's files; build into an empty or new folder")
    if (out / "manifest.json").exists():
        if not force:
            raise AudioError(f"{out}: already holds a corpus (manifest.json); pass --force to replace it, or "
                             "build into a new folder")
        (out / "manifest.json").unlink()   # first, so an interrupted replacement never looks finished
        for folder in CORPUS_FOLDERS:
            shutil.rmtree(out / folder, ignore_errors=True)
    for folder in CORPUS_FOLDERS:
        (out / folder).mkdir(parents=True, exist_ok=True)


def build_corpus(out_dir, preset_name: str = "ci", seed: int = 0, template=None, masks=None, speech=None,
                 limit_clips: int | None = None, show_progress: bool | None = None, force: bool = False) -> dict:
    """Build the corpus into `out_dir`; returns the manifest. limit_clips keeps the first N planned clips;
    force replaces a finished corpus already there (see prepare_output)."""
    if preset_name not in PRESETS:
        raise AudioError(f"unknown preset {preset_name!r}; expected one of {', '.join(PRESETS)}")
    template_path, masks_path, speech_dir = default_paths(template, masks, speech)
    mesh = load_flame_mesh(template_path)
    regions = FlameRegions.load(masks_path)
    rng = np.random.default_rng(seed)
    speakers, clips = plan_clips(PRESETS[preset_name], list_utterances(speech_dir, PRESETS[preset_name].max_sentence_s), rng)
    clips = clips[:limit_clips] if limit_clips is not None else clips
    check_clip_voices(clips)
    out = Path(out_dir)
    prepare_output(out, force)
    return _build_clips(out, preset_name, seed, mesh, regions, speakers, clips, speech_dir, EspeakSynth(), show_progress)


def _build_clips(out: Path, preset_name: str, seed: int, mesh, regions, speakers, clips, speech_dir: Path,
                 synth: EspeakSynth, show_progress) -> dict:
    """Write every clip, then the manifest; returns the manifest."""
    base_rig = FlameRig(mesh.vertices, mesh.faces, regions.masks)
    rigs, measures = {}, []
    by_name = {speaker.name: speaker for speaker in speakers}
    for index, clip in enumerate(progress(clips, description=f"building {preset_name} corpus",
                                          enabled=show_progress)):
        speaker = by_name[clip["subject"]]
        if speaker.name not in rigs:
            subject_template = identity_template(mesh.vertices, base_rig.head_size, speaker)
            rigs[speaker.name] = FlameRig(subject_template, mesh.faces, regions.masks)
            write_npz(out / "templates" / f"{speaker.name}.npz", vertices=subject_template.astype(np.float32))
        rig = rigs[speaker.name]
        audio, timeline = clip_speech(clip, speaker, speech_dir, synth)
        n_frames = int(round(len(audio) / SAMPLE_RATE * MESH_FPS))
        style = replace(speaker.style, gain=speaker.style.gain * ARTICULATION_GAIN[clip["level"]])
        clip_rng = np.random.default_rng([seed, index])
        controls = control_curves(timeline, n_frames, MESH_FPS, rig, style, frame_energy(audio, n_frames), clip_rng)
        vertices = rig.animate(controls).astype(np.float32)
        samples = to_int16(audio)
        with atomic_path(out / "wav" / f"{clip['id']}.wav") as temporary:
            soundfile.write(temporary, samples, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        write_npy(out / "vertices_npy" / f"{clip['id']}.npy", vertices.reshape(n_frames, -1))
        measures.append(clip_measures(vertices, samples, timeline, rig, regions.lips, MESH_FPS))
        clip.update(duration_s=round(len(audio) / SAMPLE_RATE, 4), frames=n_frames,
                    timeline=[[start, end, label] for start, end, label in timeline])
        del clip["text"]
    manifest = {"synthetic": True, "description": "SYNTHETIC animation: an articulatory FLAME rig driven by "
                "phoneme timings (not captured motion)", "fps": MESH_FPS, "sample_rate": SAMPLE_RATE,
                "preset": preset_name, "seed": seed, "builder_version": BUILDER_VERSION, "clips": clips,
                "subjects": {speaker.name: speaker.as_dict() for speaker in speakers if speaker.name in rigs},
                "stats": summarise(measures, clips)}
    write_json(out / "manifest.json", manifest, indent=1, sort_keys=True)
    return manifest

