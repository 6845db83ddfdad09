"""Training of the speech-mesh representation (REFERENCE §3) on the one training loop (training.loop):
stage 1 (audio-visual prior on mouth video), stage 2 (mesh encoder against the frozen speech encoder)
and the two ablations (no 2D prior: both encoders from scratch; a 3D SyncNet-style baseline).

Video for stage 1 comes from either
- `render_mouth_videos`: grey mouth-region crops rasterised (software, no GPU) from the corpus's
  SYNTHETIC meshes, or
- `read_video_clips`: user-supplied talking-face clips in an LRS3-like layout (see its docstring).
Every window pairs 5 frames at `fps` with the speech of the same span: the speech front end's 5 rows at the frame
rate (`model.speech_input = "frontend"`, the default) or 5 * 640 audio samples at 640 * fps Hz turned into the
(20, 128) fbank of `backend.features` ("fbank", the first release's speech side).

What removes the clip-identity shortcut (a model that matches voice to face, or loudness to articulation, scores
shuffled pairings as high as true ones): each clip's windows in a batch are a run of start frames
`offset_spacing` apart (hard negatives 3..30 frames off in the same clip: only timing separates them), mesh windows
centred on their own mean (`model.mesh_centring`: no identity, no held pose), identity mixing, and a speech side
that is level-normalised and pretrained on real speech.
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from backend import features
from backend.errors import BackendError
from training import loop
from training.checkpoints import load_checkpoint, save_checkpoint
from training.provenance import data_provenance
from backend.speech_feature_cache import SpeechFeatureCache
from training.representation.clips import PairedClip, gather_batch, load_corpus_clips, mix_identities, sample_windows
from training.representation.config import Config, StageConfig
from training.representation.losses import info_nce, sync_loss
from training.representation.model import AudioVisualPretrainer, MeshEncoder, build_encoders
from training.representation.video import read_video_clips, render_mouth_videos

VARIANTS = ("two-stage", "no-2d-prior", "syncnet")


# --- the stages on the one training loop ----------------------------------------------------------

CHECKPOINT_KEYS = ("meta", "speech_encoder", "mesh_encoder")
STAGE_RUNS = "runs"   # <out>/runs/<variant>/<stage>/: each stage's checkpoint.pt, loss.csv, loss.png


def loop_settings(stage: StageConfig) -> loop.LoopSettings:
    return loop.LoopSettings(stage.steps, stage.learning_rate, stage.warmup_steps, stage.weight_decay,
                             stage.grad_clip, stage.log_every, stage.checkpoint_every, 1, stage.learning_rate_floor)


def fit(module: nn.Module, batch_loss: Callable[[np.random.Generator], torch.Tensor], stage: StageConfig,
        seed: int, log: Callable[[str], None] = print, name: str = "fit", run_dir=None, config: Config | None = None,
        resume: bool = False) -> list[float]:
    """Train `module`'s parameters that require grad for `stage.steps` steps of training.loop; returns the
    losses of the steps run here.

    batch_loss(rng) draws its own batch from one seeded numpy stream (seeded by rank too under torchrun) and
    returns a scalar loss; torch's RNG is seeded as well, so a run is reproducible. With `run_dir` the stage
    checkpoints there (with the rng states: `resume` continues it bit for bit) and logs loss.csv / loss.png;
    `config` (the whole representation config) must then match to resume.
    """
    place = loop.session()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed if place.world == 1 else [seed, place.rank])
    identity = {} if config is None else {"config": json.dumps(config.to_dict())}
    result = loop.run(module, lambda step, index: {"loss": batch_loss(rng)}, loop_settings(stage), run_dir,
                      name=name, identity=identity, info={"stage": name, **({} if config is None else
                                                                            {"config": config.to_dict()})},
                      resume=resume, rng=rng, log=log)
    return result.losses


# --- the stages ----------------------------------------------------------------------------------

def train_stage1(config: Config, video_clips: list[PairedClip], log=print, run_dir=None,
                 resume: bool = False) -> AudioVisualPretrainer:
    """Stage 1: masked reconstruction + contrastive_weight * InfoNCE(speech, video) on mouth video."""
    device = loop.session().device
    torch.manual_seed(config.seed)
    model = AudioVisualPretrainer(config.model).to(device)
    stage = config.stage1
    size = config.model.video_size
    wrong = [clip.clip_id for clip in video_clips if clip.frames.shape[1:] != (size, size)]
    if wrong:
        raise BackendError(f"stage 1 needs {size}x{size} mouth frames; clip {wrong[0]} has "
                           f"{video_clips[0].frames.shape[1:]}")

    kind = model.speech_encoder.input_name
    fit_speech_standardiser(model.speech_encoder, video_clips)

    def batch_loss(rng):
        fbank, video = gather_batch(video_clips, sample_windows(video_clips, stage.batch_size, config.windows_per_clip,
                                                                rng, config.offset_spacing), kind)
        speech_ratio = config.frontend_mask_ratio if kind == "frontend" else config.mask_ratio
        speech_embedding, video_embedding, reconstruction = model(fbank.to(device), video.to(device), config.mask_ratio,
                                                                  speech_ratio)
        return reconstruction + config.contrastive_weight * info_nce(speech_embedding, video_embedding,
                                                                     config.temperature)

    fit(model, batch_loss, stage, config.seed, log, "stage 1", run_dir, config, resume)
    return model


@torch.no_grad()
def speech_targets(speech_encoder: nn.Module, clips: list[PairedClip], batch: int = 256) -> list[torch.Tensor]:
    """Frozen speech embeddings of every stride-1 window of every clip: [(windows, D), ...] on the encoder's
    device."""
    speech_encoder.eval()
    device = next(speech_encoder.parameters()).device
    targets = []
    for clip in clips:
        starts = features.window_starts(len(clip.frames), stride=1)
        fbank = torch.from_numpy(clip.speech_features(starts, speech_encoder.input_name)).to(device)
        targets.append(torch.cat([speech_encoder(chunk) for chunk in fbank.split(batch)]))
    return targets


def train_stage2(config: Config, speech_encoder: nn.Module, mesh_clips: list[PairedClip], log=print, run_dir=None,
                 resume: bool = False) -> MeshEncoder:
    """Stage 2: a mesh encoder matched to the frozen speech encoder by symmetric InfoNCE."""
    device = loop.session().device
    torch.manual_seed(config.seed)
    mesh_encoder = MeshEncoder(config.model)
    fit_mesh_standardiser(mesh_encoder, mesh_clips, config.model.mesh_centring)
    mesh_encoder = mesh_encoder.to(device)
    targets = speech_targets(speech_encoder.to(device), mesh_clips)
    stage = config.stage2

    def batch_loss(rng):
        groups = sample_windows(mesh_clips, stage.batch_size, config.windows_per_clip, rng, config.offset_spacing)
        mesh = torch.from_numpy(np.concatenate([mesh_clips[index].frame_windows(starts) for index, starts in groups]))
        if config.identity_mix:
            mesh = mix_identities(mesh_clips, groups, mesh, rng)
        speech = torch.cat([targets[index][starts] for index, starts in groups])
        return info_nce(mesh_encoder(mesh.to(device)), speech, config.temperature)

    fit(mesh_encoder, batch_loss, stage, config.seed, log, "stage 2", run_dir, config, resume)
    return mesh_encoder


def train_jointly(config: Config, variant: str, mesh_clips: list[PairedClip], log=print, run_dir=None,
                  resume: bool = False):
    """Ablations, both encoders from scratch on the corpus: 'no-2d-prior' (the same transformers,
    InfoNCE) or 'syncnet' (conv encoders, SyncNet-style sync loss). Returns (speech, mesh) encoders."""
    device = loop.session().device
    torch.manual_seed(config.seed)
    speech_encoder, mesh_encoder = build_encoders(variant, config.model)
    fit_mesh_standardiser(mesh_encoder, mesh_clips, config.model.mesh_centring)
    fit_speech_standardiser(speech_encoder, mesh_clips)
    pair = nn.ModuleDict({"speech": speech_encoder, "mesh": mesh_encoder}).to(device)
    stage = config.ablation_stage
    kind = speech_encoder.input_name

    def batch_loss(rng):
        groups = sample_windows(mesh_clips, stage.batch_size, config.windows_per_clip, rng, config.offset_spacing)
        fbank, mesh = gather_batch(mesh_clips, groups, kind)
        if config.identity_mix:
            mesh = mix_identities(mesh_clips, groups, mesh, rng)
        speech_embedding, mesh_embedding = speech_encoder(fbank.to(device)), mesh_encoder(mesh.to(device))
        if variant == "syncnet":
            return sync_loss(speech_embedding, mesh_embedding)
        return info_nce(mesh_embedding, speech_embedding, config.temperature)

    fit(pair, batch_loss, stage, config.seed, log, variant, run_dir, config, resume)
    return speech_encoder, mesh_encoder


FIT_FRAMES = 20_000   # training frames the standardisers' statistics are estimated from


def fit_mesh_standardiser(mesh_encoder: nn.Module, clips: list[PairedClip], centred: bool) -> None:
    """The mesh values read and their mean/std from up to FIT_FRAMES training frames: absolute positions, or
    (centred) each frame's displacement from the mean of the 5 frames around it (what a window sees)."""
    from scipy.ndimage import uniform_filter1d
    parts, total = [], 0
    for clip in clips:
        frames = clip.frames[: FIT_FRAMES - total]
        parts.append(frames - uniform_filter1d(frames, features.WINDOW_FRAMES, axis=0, mode="nearest")
                     if centred else frames)
        total += len(frames)
        if total >= FIT_FRAMES:
            break
    mesh_encoder.values.fit(torch.from_numpy(np.concatenate(parts).astype(np.float32)))


def fit_speech_standardiser(speech_encoder: nn.Module, clips: list[PairedClip]) -> None:
    """Front-end speech encoders: per-feature mean/std of the training clips' rows (fbank encoders have none)."""
    if hasattr(speech_encoder, "standardise"):
        speech_encoder.standardise.fit(torch.from_numpy(np.concatenate([clip.frontend for clip in clips])))


def capped(clips: list[PairedClip], max_frames: int, seed: int) -> list[PairedClip]:
    """Clips in a seeded random order up to `max_frames` frames in all (0 = all clips, in order)."""
    if max_frames <= 0:
        return clips
    chosen, total = [], 0
    for index in np.random.default_rng(seed).permutation(len(clips)):
        if total >= max_frames:
            break
        chosen.append(clips[index])
        total += len(clips[index].frames)
    return chosen


def stage_folder(out_dir, variant: str, stage: str) -> Path:
    """Where a stage of `variant` keeps its checkpoint and loss log."""
    return Path(out_dir) / STAGE_RUNS / variant / stage


def represent(config: Config, corpus_dir, out_dir, variant: str = "two-stage", video_dir=None,
              template_path=None, log=print, resume: bool = False, name: str | None = None,
              feature_cache=None) -> Path:
    """Train one representation variant on a corpus; writes `<out_dir>/<name or variant>.pt` and returns its path.

    two-stage: stage 1 on `video_dir` (LRS3-like, `read_video_clips`) when given, else on mouth video
    rendered from the corpus's train meshes (at most `config.stage1_max_frames`); then stage 2 on the corpus's
    train split (`config.data_half` of it, at most `config.max_train_frames`). Each stage checkpoints and logs in
    `stage_folder(out_dir, name, stage)`; `resume` continues them (finished stages are loaded). Front-end features
    are cached in `feature_cache` (default `<out_dir>/speech_features`).
    """
    if variant not in VARIANTS:
        raise BackendError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    out = Path(out_dir)
    name = name or variant
    started = time.perf_counter()
    cache = None
    if config.model.speech_input == "frontend":
        cache = SpeechFeatureCache(feature_cache or out / "speech_features")
    mesh_clips = load_corpus_clips(corpus_dir, "train", feature_cache=cache,
                                   half=None if config.data_half < 0 else config.data_half,
                                   max_frames=config.max_train_frames, seed=config.seed)
    log(f"{len(mesh_clips)} train clips, {sum(len(clip.frames) for clip in mesh_clips)} frames "
        f"({time.perf_counter() - started:.0f} s to load)")
    seconds = {"load": time.perf_counter() - started}
    if variant == "two-stage":
        begin = time.perf_counter()
        if video_dir is not None:
            video_clips, video_source = read_video_clips(video_dir, config.model.video_size), f"user video {video_dir}"
            if config.model.speech_input == "frontend":
                for clip in video_clips:
                    clip.frontend = frontend_rows(cache, clip)
        else:
            video_clips = render_mouth_videos(capped(mesh_clips, config.stage1_max_frames, config.seed + 1),
                                              config.model.video_size, out / "mouth_video", template_path, log)
            video_source = "mouth video rendered from the SYNTHETIC corpus train meshes"
        seconds["video"] = time.perf_counter() - begin
        begin = time.perf_counter()
        speech_encoder = train_stage1(config, video_clips, log, stage_folder(out, name, "stage1"),
                                      resume).speech_encoder
        seconds["stage1"] = time.perf_counter() - begin
        begin = time.perf_counter()
        mesh_encoder = train_stage2(config, speech_encoder, mesh_clips, log, stage_folder(out, name, "stage2"),
                                    resume)
        seconds["stage2"] = time.perf_counter() - begin
    else:
        video_source = None
        begin = time.perf_counter()
        speech_encoder, mesh_encoder = train_jointly(config, variant, mesh_clips, log,
                                                     stage_folder(out, name, "joint"), resume)
        seconds["joint"] = time.perf_counter() - begin
    path = out / f"{name}.pt"
    if loop.session().rank != 0:
        return path
    data = data_provenance(corpus_dir, len(mesh_clips))
    meta = {"variant": variant, "name": name, "config": config.to_dict(), "seconds": seconds, "stage1_video": video_source,
            "corpus": {"preset": data["preset"], "seed": data["seed"], "synthetic": data["synthetic"],
                       "train_clips": len(mesh_clips),
                       "train_frames": int(sum(len(clip.frames) for clip in mesh_clips)),
                       "train_subjects": sorted({clip.subject for clip in mesh_clips}),
                       "train_sentences": sorted({clip.sentence for clip in mesh_clips})}}
    save_checkpoint(path, {"meta": json.dumps(meta), "speech_encoder": speech_encoder.cpu().state_dict(),
                           "mesh_encoder": mesh_encoder.cpu().state_dict()})
    log(f"saved {path} ({', '.join(f'{key} {value:.0f} s' for key, value in seconds.items())})")
    return path


def frontend_rows(cache: SpeechFeatureCache, clip: PairedClip) -> np.ndarray:
    """(T, 447) front-end features of a clip's speech at its frame rate (cached)."""
    from backend.speech_frontend import features_at_fps
    from training.representation.clips import speech_rate
    return features_at_fps(cache.features(clip.speech, speech_rate(clip.fps)), len(clip.frames), clip.fps)


@dataclass
class Representation:
    """A trained speech encoder and mesh encoder (eval mode) with the run's metadata."""

    speech_encoder: nn.Module
    mesh_encoder: nn.Module
    meta: dict

    @property
    def config(self) -> Config:
        return Config.from_dict(self.meta["config"])


def load_representation_checkpoint(path) -> dict:
    """A checkpoint written by `represent` (ModelError if unusable)."""
    return load_checkpoint(path, CHECKPOINT_KEYS, "python -m training represent")


def load_representation_meta(path) -> dict:
    """The training metadata (variant, config, corpus, seconds) of a checkpoint written by `represent`."""
    return json.loads(load_representation_checkpoint(path)["meta"])


def load_representation(path) -> Representation:
    """Rebuild the encoders of a checkpoint written by `represent`."""
    checkpoint = load_representation_checkpoint(path)
    meta = json.loads(checkpoint["meta"])
    speech_encoder, mesh_encoder = build_encoders(meta["variant"], Config.from_dict(meta["config"]).model)
    speech_encoder.load_state_dict(checkpoint["speech_encoder"])
    mesh_encoder.load_state_dict(checkpoint["mesh_encoder"])
    return Representation(speech_encoder.eval(), mesh_encoder.eval(), meta)
