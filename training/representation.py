"""Training of the speech-mesh representation (REFERENCE §3): data windows, the reusable `fit` loop,
stage 1 (audio-visual prior on mouth video), stage 2 (mesh encoder against the frozen speech encoder)
and the two ablations (no 2D prior: both encoders from scratch; a 3D SyncNet-style baseline).

Video for stage 1 comes from either
- `render_mouth_videos`: grey mouth-region crops rasterised (software, no GPU) from the corpus's
  SYNTHETIC meshes, or
- `read_video_clips`: user-supplied talking-face clips in an LRS3-like layout (see its docstring).
Every window pairs 5 frames at `fps` with 5 * 640 audio samples at 640 * fps Hz (REFERENCE §2: at
30 fps that is 19.2 kHz and 3200 samples), turned into the (20, 128) fbank of `backend.features`.
"""

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from backend import features
from backend.audio import load_audio, resample
from backend.errors import BackendError, ModelError
from backend.flame import LOWER_LIP_CENTRE, UPPER_LIP_CENTRE
from training.config import Config, StageConfig
from training.losses import info_nce, sync_loss
from training.models.speech_mesh import AudioVisualPretrainer, MeshEncoder, build_encoders

VARIANTS = ("two-stage", "no-2d-prior", "syncnet")
MOUTH_HALF_EXTENT_M = 0.03   # the mouth crop spans the lip centre +- 3 cm
DEFAULT_VIDEO_FPS = 25.0     # LRS3 frame rate, used when a video folder does not say


# --- checkpoints and the training loop ------------------------------------------------------------

def save_checkpoint(path, payload: dict) -> Path:
    """torch.save to a temporary file in the same folder, then os.replace: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial")
    torch.save(payload, temporary)
    os.replace(temporary, path)
    return path


def load_checkpoint(path) -> dict:
    """A checkpoint written by `save_checkpoint`, loaded with weights_only=True (no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several unrelated types for unreadable files
        raise ModelError(f"{path}: not a readable checkpoint ({str(error).splitlines()[0]})") from None


def fit(module: nn.Module, batch_loss: Callable[[np.random.Generator], torch.Tensor], stage: StageConfig,
        seed: int, log: Callable[[str], None] = print, name: str = "fit") -> list[float]:
    """Train `module`'s parameters that require grad for `stage.steps` AdamW steps; returns the losses.

    batch_loss(rng) draws its own batch from the seeded numpy rng and returns a scalar loss. Torch's
    RNG is seeded too, so a run is reproducible. Schedule: linear warm-up then cosine decay to 0.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    parameters = [parameter for parameter in module.parameters() if parameter.requires_grad]
    optimiser = torch.optim.AdamW(parameters, lr=stage.learning_rate, weight_decay=stage.weight_decay)

    def schedule(step: int) -> float:
        if step < stage.warmup_steps:
            return (step + 1) / stage.warmup_steps
        progress = (step - stage.warmup_steps) / max(1, stage.steps - stage.warmup_steps)
        return 0.5 * (1.0 + np.cos(np.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, schedule)
    module.train()
    losses, started = [], time.perf_counter()
    for step in range(stage.steps):
        loss = batch_loss(rng)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(parameters, stage.grad_clip)
        optimiser.step()
        scheduler.step()
        losses.append(loss.item())
        if (step + 1) % stage.log_every == 0 or step + 1 == stage.steps:
            recent = np.mean(losses[-stage.log_every:])
            log(f"{name} step {step + 1}/{stage.steps} loss {recent:.4f} ({time.perf_counter() - started:.0f} s)")
    module.eval()
    return losses


# --- paired clips and windows --------------------------------------------------------------------

@dataclass
class PairedClip:
    """One clip's speech and frames. speech: (S,) float32 at 640 * fps Hz; frames: (T, 15069) float32
    vertices or (T, S, S) uint8 mouth video; timeline: phone intervals (start_s, end_s, label) or None."""

    clip_id: str
    speech: np.ndarray
    frames: np.ndarray
    fps: float
    subject: str = ""
    sentence: str = ""
    level: Optional[int] = None
    timeline: Optional[list] = None
    template: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def window_count(self) -> int:
        return max(0, len(self.frames) - features.WINDOW_FRAMES + 1)

    def speech_features(self, starts: np.ndarray) -> np.ndarray:
        """(len(starts), 20, 128) normalised fbank of the speech windows paired with frame windows."""
        return features.speech_window_features(features.speech_windows(self.speech, starts))

    def frame_windows(self, starts: np.ndarray) -> np.ndarray:
        """(len(starts), 5, ...) frames starting at each start."""
        return self.frames[np.asarray(starts)[:, None] + np.arange(features.WINDOW_FRAMES)]


def speech_rate(fps: float) -> int:
    """The audio rate at which one frame is 640 samples (19.2 kHz at 30 fps, 16 kHz at 25 fps)."""
    return int(round(features.SAMPLES_PER_FRAME * fps))


def load_corpus_clips(corpus_dir, split: str, limit: Optional[int] = None) -> list[PairedClip]:
    """Clips of one split of a corpus built by `training.corpus`, vertices flattened to (T, 15069)."""
    from backend.datasets import open_dataset
    from backend.frame_rate import MESH_FPS
    dataset = open_dataset(corpus_dir, kind="corpus", split=split, fps=MESH_FPS)
    clips = []
    for clip_id in dataset.clip_ids()[:limit]:
        clip = dataset.load(clip_id)
        speech = resample(clip.audio, clip.sample_rate, speech_rate(clip.fps)).astype(np.float32)
        clips.append(PairedClip(clip_id, speech, np.ascontiguousarray(clip.vertices.reshape(len(clip.vertices), -1)),
                                clip.fps, clip.subject, clip.sentence, clip.level, clip.timeline, clip.template))
    return clips


def sample_windows(clips: list[PairedClip], batch_size: int, windows_per_clip: int,
                   rng: np.random.Generator) -> list[tuple[int, np.ndarray]]:
    """(clip index, starts) groups filling one batch: clips drawn in proportion to their window
    count, `windows_per_clip` distinct starts from each (so a batch holds same-clip time offsets
    as negatives as well as other clips)."""
    counts = np.array([clip.window_count for clip in clips], dtype=np.float64)
    usable = counts >= windows_per_clip
    if not usable.any():
        raise BackendError(f"no clip has {windows_per_clip} windows ({windows_per_clip + 4} frames); "
                           f"the longest has {int(counts.max(initial=0))} windows")
    weights = np.where(usable, counts, 0.0) / counts[usable].sum()
    groups = []
    for clip_index in rng.choice(len(clips), size=max(1, batch_size // windows_per_clip), p=weights):
        starts = np.sort(rng.choice(int(counts[clip_index]), size=windows_per_clip, replace=False))
        groups.append((int(clip_index), starts))
    return groups


def gather_batch(clips: list[PairedClip], groups) -> tuple[torch.Tensor, torch.Tensor]:
    """(fbank (B, 20, 128), frames (B, 5, ...) float32) for sampled groups; video scaled to [0, 1]."""
    fbank = np.concatenate([clips[index].speech_features(starts) for index, starts in groups])
    frames = np.concatenate([clips[index].frame_windows(starts) for index, starts in groups])
    frames = frames.astype(np.float32) / 255.0 if frames.dtype == np.uint8 else frames.astype(np.float32)
    return torch.from_numpy(fbank), torch.from_numpy(frames)


def mix_identities(clips: list[PairedClip], groups, windows: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Identity augmentation of mesh windows (B, 5, 15069), group by group: add lambda * (template of
    a random training clip - own template), lambda ~ U(0, 1). Motion is kept while the face shape
    moves between training identities, so the mesh encoder cannot lean on who is speaking."""
    offsets = []
    for index, starts in groups:
        other = clips[rng.integers(len(clips))].template
        shift = rng.uniform() * (other - clips[index].template).reshape(-1)
        offsets.append(np.broadcast_to(shift, (len(starts), features.WINDOW_FRAMES, shift.size)))
    return windows + torch.from_numpy(np.concatenate(offsets).astype(np.float32))


# --- stage-1 video sources -----------------------------------------------------------------------

def mouth_faces(template: np.ndarray, faces: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """The faces whose template centroid lies near the mouth crop (speeds up rasterising)."""
    centroids = template[faces].mean(axis=1)
    near = np.all(np.abs(centroids[:, :2] - centre[:2]) < 1.5 * MOUTH_HALF_EXTENT_M, axis=1)
    return faces[near]


def render_mouth_video(vertices: np.ndarray, faces: np.ndarray, template: np.ndarray, size: int) -> np.ndarray:
    """Mouth-region video of a SYNTHETIC mesh clip: (T, 5023, 3) -> (T, size, size) uint8 grey.

    Front view, Gouraud-shaded (training.corpus.render.rasterise); the crop is centred on the
    subject's template lip centre (a stabilised crop, as LRS3-style preprocessing gives).
    """
    from training.corpus.render import rasterise
    centre = 0.5 * (template[UPPER_LIP_CENTRE] + template[LOWER_LIP_CENTRE])
    near = mouth_faces(template, faces, centre)
    video = np.empty((len(vertices), size, size), dtype=np.uint8)
    for frame, mesh in enumerate(vertices):
        grey = rasterise(mesh, near, centre[:2], MOUTH_HALF_EXTENT_M, size).mean(axis=2)
        video[frame] = np.round(grey * 255.0).astype(np.uint8)
    return video


def render_mouth_videos(clips: list[PairedClip], size: int, cache_dir, template_path=None,
                        log: Callable[[str], None] = print) -> list[PairedClip]:
    """Stage-1 clips: each mesh clip's speech with its rendered mouth video, cached as
    `<cache_dir>/<clip>_<size>.npy` so later runs reuse it."""
    from backend.mesh import load_flame_mesh
    from training.corpus.paths import default_paths
    faces = load_flame_mesh(default_paths(template_path)[0]).faces
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    started, video_clips = time.perf_counter(), []
    for clip in clips:
        path = cache / f"{clip.clip_id}_{size}.npy"
        if path.is_file():
            video = np.load(path, allow_pickle=False)
        else:
            video = render_mouth_video(clip.frames.reshape(len(clip.frames), -1, 3), faces, clip.template, size)
            temporary = path.with_name(f".{path.name}.partial")
            with open(temporary, "wb") as handle:
                np.save(handle, video)
            os.replace(temporary, path)
        video_clips.append(PairedClip(clip.clip_id, clip.speech, video, clip.fps, clip.subject, clip.sentence,
                                      clip.level, clip.timeline))
    log(f"mouth video for {len(clips)} clips ready in {time.perf_counter() - started:.0f} s ({cache})")
    return video_clips


def read_video_clips(root, size: int) -> list[PairedClip]:
    """User-supplied talking-face clips in an LRS3-like layout, as stage-1 clips:

        <root>/video.json                  optional: {"fps": 25}  (default 25, LRS3's rate)
        <root>/<speaker>/<clip>.wav        speech (any rate; resampled to 640 * fps Hz)
        <root>/<speaker>/<clip>.npy        pre-cropped mouth frames (T, H, W) or (T, H, W, 3), uint8
        <root>/<speaker>/<clip>/*.png      ... or the same frames as images, in name order

    Frames are turned grey and resized to size x size (bilinear).
    """
    from scipy.ndimage import zoom
    root = Path(root)
    if not root.is_dir():
        raise BackendError(f"video folder not found: {root}")
    fps = DEFAULT_VIDEO_FPS
    if (root / "video.json").is_file():
        fps = json.loads((root / "video.json").read_text(encoding="utf-8")).get("fps", fps)
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or fps <= 0:
            raise BackendError(f"{root / 'video.json'}: 'fps' is {fps!r}; expected a positive number")
    clips = []
    for wav in sorted(root.rglob("*.wav")):
        frames = _read_frames(wav.with_suffix(""))
        if frames.ndim == 4 and frames.shape[3] == 3:
            frames = frames.mean(axis=3)
        if frames.ndim != 3 or len(frames) < features.WINDOW_FRAMES:
            raise BackendError(f"{wav.with_suffix('')}: mouth frames have shape {frames.shape}; expected "
                               f"(T >= {features.WINDOW_FRAMES}, H, W) or (T, H, W, 3)")
        audio, rate = load_audio(wav, speech_rate(fps))
        audio_s, video_s = len(audio) / rate, len(frames) / fps
        if abs(audio_s - video_s) > max(0.5, 0.1 * video_s):
            raise BackendError(f"{wav}: audio lasts {audio_s:.2f} s but its {len(frames)} frames at {fps:g} fps "
                               f"last {video_s:.2f} s; they must match within 0.5 s or 10%")
        scale = (1.0, size / frames.shape[1], size / frames.shape[2])
        grey = np.clip(zoom(frames.astype(np.float32), scale, order=1), 0, 255)
        clips.append(PairedClip(f"{wav.parent.name}/{wav.stem}", audio.astype(np.float32),
                                np.round(grey).astype(np.uint8), float(fps), subject=wav.parent.name))
    if not clips:
        raise BackendError(f"{root}: no <speaker>/<clip>.wav with mouth frames found; expected the layout "
                           "<speaker>/<clip>.wav + <speaker>/<clip>.npy (or <speaker>/<clip>/*.png)")
    return clips


def _read_frames(stem: Path) -> np.ndarray:
    """Mouth frames next to a .wav: `<stem>.npy` or `<stem>/*.png`, as a uint8-range array."""
    if stem.with_suffix(".npy").is_file():
        try:
            return np.load(stem.with_suffix(".npy"), allow_pickle=False)
        except (ValueError, OSError) as error:
            raise BackendError(f"{stem.with_suffix('.npy')}: could not read the frames ({error})") from error
    images = sorted(stem.glob("*.png")) if stem.is_dir() else []
    if not images:
        raise BackendError(f"{stem}.wav has no mouth frames: expected {stem.name}.npy or a folder "
                           f"{stem.name}/ of PNG images beside it")
    from matplotlib.image import imread
    frames = np.stack([imread(image) for image in images]).astype(np.float32) * 255.0  # PNG reads as 0..1
    return frames[..., :3] if frames.ndim == 4 else frames


# --- the stages ----------------------------------------------------------------------------------

def train_stage1(config: Config, video_clips: list[PairedClip], log=print) -> AudioVisualPretrainer:
    """Stage 1: masked reconstruction + contrastive_weight * InfoNCE(speech, video) on mouth video."""
    torch.manual_seed(config.seed)
    model = AudioVisualPretrainer(config.model)
    stage = config.stage1
    size = config.model.video_size
    wrong = [clip.clip_id for clip in video_clips if clip.frames.shape[1:] != (size, size)]
    if wrong:
        raise BackendError(f"stage 1 needs {size}x{size} mouth frames; clip {wrong[0]} has "
                           f"{video_clips[0].frames.shape[1:]}")

    def batch_loss(rng):
        fbank, video = gather_batch(video_clips, sample_windows(video_clips, stage.batch_size,
                                                                config.windows_per_clip, rng))
        speech_embedding, video_embedding, reconstruction = model(fbank, video, config.mask_ratio)
        return reconstruction + config.contrastive_weight * info_nce(speech_embedding, video_embedding,
                                                                     config.temperature)

    fit(model, batch_loss, stage, config.seed, log, "stage 1")
    return model


@torch.no_grad()
def speech_targets(speech_encoder: nn.Module, clips: list[PairedClip], batch: int = 256) -> list[torch.Tensor]:
    """Frozen speech embeddings of every stride-1 window of every clip: [(windows, D), ...]."""
    speech_encoder.eval()
    targets = []
    for clip in clips:
        starts = features.window_starts(len(clip.frames), stride=1)
        fbank = torch.from_numpy(clip.speech_features(starts))
        targets.append(torch.cat([speech_encoder(chunk) for chunk in fbank.split(batch)]))
    return targets


def train_stage2(config: Config, speech_encoder: nn.Module, mesh_clips: list[PairedClip], log=print) -> MeshEncoder:
    """Stage 2: a mesh encoder matched to the frozen speech encoder by symmetric InfoNCE."""
    torch.manual_seed(config.seed)
    mesh_encoder = MeshEncoder(config.model)
    mesh_encoder.standardise.fit(torch.from_numpy(np.concatenate([clip.frames for clip in mesh_clips])))
    targets = speech_targets(speech_encoder, mesh_clips)
    stage = config.stage2

    def batch_loss(rng):
        groups = sample_windows(mesh_clips, stage.batch_size, config.windows_per_clip, rng)
        mesh = torch.from_numpy(np.concatenate([mesh_clips[index].frame_windows(starts) for index, starts in groups]))
        if config.identity_mix:
            mesh = mix_identities(mesh_clips, groups, mesh, rng)
        speech = torch.cat([targets[index][starts] for index, starts in groups])
        return info_nce(mesh_encoder(mesh), speech, config.temperature)

    fit(mesh_encoder, batch_loss, stage, config.seed, log, "stage 2")
    return mesh_encoder


def train_jointly(config: Config, variant: str, mesh_clips: list[PairedClip], log=print):
    """Ablations, both encoders from scratch on the corpus: 'no-2d-prior' (the same transformers,
    InfoNCE) or 'syncnet' (conv encoders, SyncNet-style sync loss). Returns (speech, mesh) encoders."""
    torch.manual_seed(config.seed)
    speech_encoder, mesh_encoder = build_encoders(variant, config.model)
    mesh_encoder.standardise.fit(torch.from_numpy(np.concatenate([clip.frames for clip in mesh_clips])))
    pair = nn.ModuleDict({"speech": speech_encoder, "mesh": mesh_encoder})
    stage = config.ablation_stage

    def batch_loss(rng):
        groups = sample_windows(mesh_clips, stage.batch_size, config.windows_per_clip, rng)
        fbank, mesh = gather_batch(mesh_clips, groups)
        if config.identity_mix:
            mesh = mix_identities(mesh_clips, groups, mesh, rng)
        speech_embedding, mesh_embedding = speech_encoder(fbank), mesh_encoder(mesh)
        if variant == "syncnet":
            return sync_loss(speech_embedding, mesh_embedding)
        return info_nce(mesh_embedding, speech_embedding, config.temperature)

    fit(pair, batch_loss, stage, config.seed, log, variant)
    return speech_encoder, mesh_encoder


def represent(config: Config, corpus_dir, out_dir, variant: str = "two-stage", video_dir=None,
              template_path=None, log=print) -> Path:
    """Train one representation variant on a corpus; writes `<out_dir>/<variant>.pt` and returns its path.

    two-stage: stage 1 on `video_dir` (LRS3-like, `read_video_clips`) when given, else on mouth video
    rendered from the corpus's train meshes; then stage 2 on the corpus's train split.
    """
    if variant not in VARIANTS:
        raise BackendError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    out = Path(out_dir)
    started = time.perf_counter()
    mesh_clips = load_corpus_clips(corpus_dir, "train")
    log(f"{len(mesh_clips)} train clips, {sum(len(clip.frames) for clip in mesh_clips)} frames "
        f"({time.perf_counter() - started:.0f} s to load)")
    seconds = {}
    if variant == "two-stage":
        begin = time.perf_counter()
        if video_dir is not None:
            video_clips, video_source = read_video_clips(video_dir, config.model.video_size), f"user video {video_dir}"
        else:
            video_clips = render_mouth_videos(mesh_clips, config.model.video_size, out / "mouth_video",
                                              template_path, log)
            video_source = "mouth video rendered from the SYNTHETIC corpus train meshes"
        seconds["video"] = time.perf_counter() - begin
        begin = time.perf_counter()
        speech_encoder = train_stage1(config, video_clips, log).speech_encoder
        seconds["stage1"] = time.perf_counter() - begin
        begin = time.perf_counter()
        mesh_encoder = train_stage2(config, speech_encoder, mesh_clips, log)
        seconds["stage2"] = time.perf_counter() - begin
    else:
        video_source = None
        begin = time.perf_counter()
        speech_encoder, mesh_encoder = train_jointly(config, variant, mesh_clips, log)
        seconds["joint"] = time.perf_counter() - begin
    manifest = json.loads((Path(corpus_dir) / "manifest.json").read_text(encoding="utf-8"))
    meta = {"variant": variant, "config": config.to_dict(), "seconds": seconds, "stage1_video": video_source,
            "corpus": {"preset": manifest.get("preset"), "seed": manifest.get("seed"),
                       "synthetic": manifest.get("synthetic"), "train_clips": len(mesh_clips),
                       "train_frames": int(sum(len(clip.frames) for clip in mesh_clips)),
                       "train_subjects": sorted({clip.subject for clip in mesh_clips}),
                       "train_sentences": sorted({clip.sentence for clip in mesh_clips})}}
    path = save_checkpoint(out / f"{variant}.pt", {"meta": json.dumps(meta),
                                                   "speech_encoder": speech_encoder.state_dict(),
                                                   "mesh_encoder": mesh_encoder.state_dict()})
    log(f"saved {path} ({', '.join(f'{key} {value:.0f} s' for key, value in seconds.items())})")
    return path


@dataclass
class Representation:
    """A trained speech encoder and mesh encoder (eval mode) with the run's metadata."""

    speech_encoder: nn.Module
    mesh_encoder: nn.Module
    meta: dict

    @property
    def config(self) -> Config:
        return Config.from_dict(self.meta["config"])


def load_representation(path) -> Representation:
    """Rebuild the encoders of a checkpoint written by `represent`."""
    checkpoint = load_checkpoint(path)
    missing = [key for key in ("meta", "speech_encoder", "mesh_encoder") if key not in checkpoint]
    if missing:
        raise ModelError(f"{path}: checkpoint lacks {', '.join(missing)}; expected one written by "
                         "`python -m training represent`")
    meta = json.loads(checkpoint["meta"])
    speech_encoder, mesh_encoder = build_encoders(meta["variant"], Config.from_dict(meta["config"]).model)
    speech_encoder.load_state_dict(checkpoint["speech_encoder"])
    mesh_encoder.load_state_dict(checkpoint["mesh_encoder"])
    return Representation(speech_encoder.eval(), mesh_encoder.eval(), meta)
