"""Stage-1 video sources of the representation: grey mouth-region crops rasterised (software, no GPU) from a
corpus's SYNTHETIC meshes (`render_mouth_videos`), or user-supplied talking-face clips in an LRS3-like layout
(`read_video_clips`)."""

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from backend import features
from backend.atomic import write_npy
from backend.audio import load_audio
from backend.errors import BackendError
from backend.flame import LOWER_LIP_CENTRE, UPPER_LIP_CENTRE
from backend.mesh import load_flame_mesh
from training.corpus.render import rasterise
from training.representation.clips import PairedClip, speech_rate

MOUTH_HALF_EXTENT_M = 0.03   # the mouth crop spans the lip centre +- 3 cm
DEFAULT_VIDEO_FPS = 25.0     # LRS3 frame rate, used when a video folder does not say


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
            write_npy(path, video)
        video_clips.append(PairedClip(clip.clip_id, clip.speech, video, clip.fps, clip.subject, clip.sentence,
                                      clip.level, clip.timeline, frontend=clip.frontend))
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

