"""PLRS, Perceptual Lip Readability Score (REFERENCE §2), for any speech-mesh encoder pair.

Windowing, as published: mesh at 30 fps; non-overlapping 5-frame chunks, chunk i = mesh frames [5i, 5i+5) of
**absolute** vertex positions, paired with the speech of the same span. Clip score = mean cosine similarity of
the matched embeddings; PLRS = mean of clip scores. Cosine similarity L2-normalises both embeddings here (models
need not normalise).

Encoder contract (ONNX files):
- speech encoder `speech_encoder.onnx`, one input that names what it hears:
  `fbank` float32 (B, 20, 128): the published input, audio resampled to 19.2 kHz (640 samples = one frame),
  samples [5i*640, 5i*640 + 3200) turned into a normalised fbank (`backend.features`); or
  `frontend` float32 (B, 5, 447): the speech front end's features (backend.speech_frontend, computed once over
  the whole clip, since they depend on context) resampled to 30 fps, rows 5i..5i+4 (`features_at_fps`);
  output `embedding` float32 (B, D);
- mesh encoder `mesh_encoder.onnx`: input `vertices` float32 (B, 5, 15069) (absolute positions in metres,
  5 frames, flattened FLAME vertices) -> output `embedding` float32 (B, D), same D.
The batch axis must be dynamic. Any object with `embed_speech` / `embed_mesh` (the `SpeechMeshEncoders`
protocol) can stand in for the ONNX pair, e.g. in tests; its `speech_input` says which input it takes
(an object without one takes the published `fbank`).

The shipped PLRS models are the independent evaluator (`models/plrs_evaluator/`, trained apart from the critic
that generators train against); its `evaluator.json` holds its calibration on real held-out speech and the
colour bands derived from it (`read_bands`), the one place the add-on's bands come from.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol

import numpy as np

from backend import features
from backend.audio import resample
from backend.errors import MetricError, ModelError
from backend.metrics import inputs
from backend.onnx_session import open_session
from backend.models import PLRS_EVALUATOR, default_models_dir

SPEECH_ENCODER_FILE = "speech_encoder.onnx"
MESH_ENCODER_FILE = "mesh_encoder.onnx"
EVALUATOR_FILE = "evaluator.json"
FBANK_INPUT, FRONTEND_INPUT = "fbank", "frontend"
MESH_INPUT, EMBEDDING_OUTPUT = "vertices", "embedding"
FRONTEND_DIM = 447   # backend.speech_frontend.FEATURE_DIM (log-posteriors + hidden layer)
SPEECH_INPUT_SHAPES = {FBANK_INPUT: (features.FBANK_FRAMES, features.FBANK_BINS),
                       FRONTEND_INPUT: (features.WINDOW_FRAMES, FRONTEND_DIM)}
DEFAULT_BATCH_SIZE = 64


class SpeechMeshEncoders(Protocol):
    """A speech encoder and a mesh encoder that map matching windows to nearby D-dim embeddings.
    `speech_input` (optional attribute): FBANK_INPUT (the default) or FRONTEND_INPUT."""

    def embed_speech(self, speech: np.ndarray) -> np.ndarray:
        """(B, 20, 128) normalised fbank or (B, 5, 447) front-end features, float32 -> (B, D)."""

    def embed_mesh(self, vertices: np.ndarray) -> np.ndarray:
        """(B, 5, V, 3) float32 absolute vertex positions -> (B, D)."""


class OnnxSpeechMeshEncoders:
    """The contract's two ONNX models run with onnxruntime on the CPU (no spinning threads, so a UI
    thread stays responsive). Missing, corrupt or mismatched models raise ModelError."""

    def __init__(self, speech_path, mesh_path, threads: int = 1):
        self.speech = _open_session(Path(speech_path), SPEECH_INPUT_SHAPES, threads)
        self.speech_input = self.speech.get_inputs()[0].name
        self.mesh = _open_session(Path(mesh_path), {MESH_INPUT: (features.WINDOW_FRAMES, None)}, threads)
        self.mesh_width = self.mesh.get_inputs()[0].shape[2]

    @classmethod
    def from_directory(cls, directory, threads: int = 1) -> "OnnxSpeechMeshEncoders":
        """Load SPEECH_ENCODER_FILE and MESH_ENCODER_FILE from one folder."""
        directory = Path(directory)
        return cls(directory / SPEECH_ENCODER_FILE, directory / MESH_ENCODER_FILE, threads)

    def embed_speech(self, speech: np.ndarray) -> np.ndarray:
        return _run(self.speech, self.speech_input, np.asarray(speech, dtype=np.float32))

    def embed_mesh(self, vertices: np.ndarray) -> np.ndarray:
        windows = np.asarray(vertices, dtype=np.float32)
        flat = windows.reshape(windows.shape[0], windows.shape[1], -1)
        if isinstance(self.mesh_width, int) and flat.shape[2] != self.mesh_width:
            raise ModelError(f"mesh encoder expects {self.mesh_width} values per frame "
                             f"({self.mesh_width // 3} vertices); got {flat.shape[2] // 3} vertices")
        return _run(self.mesh, MESH_INPUT, flat)


def _open_session(path: Path, allowed: dict, threads: int):
    """An onnxruntime session whose single input is one of `allowed` {name: trailing shape}, of shape
    (B, *trailing shape)."""
    if not path.is_file():
        raise ModelError(f"{path}: encoder model not found; PLRS needs {SPEECH_ENCODER_FILE} and {MESH_ENCODER_FILE}")
    session = open_session(path, threads)
    model_inputs = session.get_inputs()
    names = [item.name for item in model_inputs]
    if len(names) != 1 or names[0] not in allowed:
        wanted = " or ".join(f"'{name}'" for name in allowed)
        raise ModelError(f"{path}: model inputs are {names}; the PLRS contract needs one input named {wanted}")
    input_name, trailing_shape = names[0], allowed[names[0]]
    shape = model_inputs[0].shape
    expected = ["B", *trailing_shape]
    fixed_mismatch = any(want is not None and isinstance(got, int) and got != want
                         for got, want in zip(shape[1:], trailing_shape))
    if len(shape) != len(expected) or fixed_mismatch:
        shown = ", ".join("any" if dim is None else str(dim) for dim in expected)
        raise ModelError(f"{path}: input '{input_name}' has shape {shape}; the PLRS contract needs ({shown})")
    outputs = [item.name for item in session.get_outputs()]
    if EMBEDDING_OUTPUT not in outputs:
        raise ModelError(f"{path}: model outputs are {outputs}; the PLRS contract needs an output named "
                         f"'{EMBEDDING_OUTPUT}'")
    return session


def _run(session, input_name: str, batch: np.ndarray) -> np.ndarray:
    try:
        (embedding,) = session.run([EMBEDDING_OUTPUT], {input_name: batch})
    except Exception as error:  # shape errors inside the graph surface as onnxruntime exceptions
        raise ModelError(f"encoder failed on input '{input_name}' of shape {batch.shape}: "
                         f"{str(error).splitlines()[0]}") from None
    return embedding


def load_model_set_encoders(models_dir, threads: int = 1) -> Optional["OnnxSpeechMeshEncoders"]:
    """The PLRS evaluator under a models folder (`<models_dir>/plrs_evaluator/`, the layout the add-on ships),
    or None when it is not there."""
    folder = Path(models_dir) / PLRS_EVALUATOR
    if not all((folder / name).is_file() for name in (SPEECH_ENCODER_FILE, MESH_ENCODER_FILE)):
        return None
    return OnnxSpeechMeshEncoders.from_directory(folder, threads)


def find_encoder_directory(explicit=None) -> Optional[Path]:
    """The folder holding both encoder files: `explicit` (must hold them), else the shipped PLRS evaluator
    (`backend.models.default_models_dir(PLRS_EVALUATOR)`) when both files are there, else None.
    """
    if explicit is None:
        shipped = default_models_dir(PLRS_EVALUATOR)
        complete = all((shipped / name).is_file() for name in (SPEECH_ENCODER_FILE, MESH_ENCODER_FILE))
        return shipped if complete else None
    directory = Path(explicit)
    missing = [name for name in (SPEECH_ENCODER_FILE, MESH_ENCODER_FILE) if not (directory / name).is_file()]
    if missing:
        raise ModelError(f"{directory}: missing {', '.join(missing)}; a PLRS model folder needs "
                         f"{SPEECH_ENCODER_FILE} and {MESH_ENCODER_FILE}")
    return directory


def cosine_similarities(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(B,) cosine similarity of matching rows of two (B, D) arrays, each row L2-normalised first."""
    first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if first.ndim != 2 or first.shape != second.shape:
        raise ModelError(f"encoders returned embeddings of shapes {first.shape} and {second.shape}; "
                         "expected two (B, D) arrays of the same shape")
    inputs.finite(first, "speech embedding")
    inputs.finite(second, "mesh embedding")
    norms = np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1)
    return np.sum(first * second, axis=1) / np.maximum(norms, 1e-12)


def read_bands(directory) -> Optional[tuple]:
    """(good, fair) PLRS limits from `<directory>/evaluator.json` ("bands": {"good": g, "fair": f}, measured on
    real held-out speech: see the evaluator's card), or None when the folder has no such file. A score >= good
    reads good, >= fair fair, else poor. ModelError for a file without usable bands."""
    path = Path(directory) / EVALUATOR_FILE
    if not path.is_file():
        return None
    try:
        bands = json.loads(path.read_text(encoding="utf-8"))["bands"]
        good, fair = float(bands["good"]), float(bands["fair"])
    except (ValueError, KeyError, TypeError) as error:
        raise ModelError(f"{path}: no usable PLRS bands ({error}); expected \"bands\": {{\"good\": g, \"fair\": f}}") from None
    if not (np.isfinite(good) and np.isfinite(fair) and good > fair):
        raise ModelError(f"{path}: PLRS bands good {good} and fair {fair}; expected finite numbers with good > fair")
    return good, fair


def speech_input_of(encoders) -> str:
    """What an encoder pair's speech side takes: FBANK_INPUT (the published input, also for objects that do not
    say) or FRONTEND_INPUT."""
    kind = getattr(encoders, "speech_input", FBANK_INPUT)
    if kind not in SPEECH_INPUT_SHAPES:
        raise ModelError(f"speech input {kind!r} is not part of the PLRS contract; expected one of "
                         f"{', '.join(SPEECH_INPUT_SHAPES)}")
    return kind


def speech_at_plrs_rate(samples, rate: int) -> np.ndarray:
    """Float mono samples resampled to 19.2 kHz (one mesh frame = 640 samples)."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1 or samples.size == 0:
        raise MetricError(f"speech samples: expected non-empty mono audio of shape (n,); got shape {samples.shape}")
    inputs.finite(samples, "speech samples")
    return resample(samples, int(rate), features.PLRS_AUDIO_RATE).astype(np.float32)


def speech_track(kind: str, samples, rate: int, num_frames: int) -> np.ndarray:
    """One clip's speech, prepared once for `speech_window_inputs`: the 19.2 kHz samples (FBANK_INPUT) or the
    (num_frames, 447) front-end features at 30 fps (FRONTEND_INPUT; frame j pairs with mesh frame j)."""
    if kind == FBANK_INPUT:
        return speech_at_plrs_rate(samples, rate)
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1 or samples.size == 0:
        raise MetricError(f"speech samples: expected non-empty mono audio of shape (n,); got shape {samples.shape}")
    inputs.finite(samples, "speech samples")
    from backend.speech_frontend import features_at_fps, load_frontend   # only PLRS on front-end features needs it
    try:
        frontend = load_frontend()
    except FileNotFoundError as error:
        raise ModelError(f"this PLRS speech encoder hears the speech front end, but {error}") from None
    return features_at_fps(frontend.features(samples, int(rate)).stacked(), int(num_frames))


def speech_window_inputs(kind: str, track: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The speech encoder's input for the windows starting at `starts` (frames): (B, 20, 128) fbank, or
    (B, 5, 447) front-end rows (the last row repeated past the track's end)."""
    if kind == FBANK_INPUT:
        return features.speech_window_features(features.speech_windows(track, starts))
    index = np.minimum(np.asarray(starts, dtype=np.int64)[:, None] + np.arange(features.WINDOW_FRAMES), len(track) - 1)
    return track[index]


def window_similarities(encoders: SpeechMeshEncoders, track: np.ndarray, vertices: np.ndarray,
                        mesh_starts: np.ndarray, speech_starts: np.ndarray,
                        batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """(N,) cosine similarity of mesh windows at `mesh_starts` and speech windows at `speech_starts`
    (frame indices, paired element-wise; `track` from `speech_track`), computed `batch_size` windows at a time."""
    if int(batch_size) < 1:
        raise MetricError(f"batch_size must be a positive integer; got {batch_size!r}")
    kind = speech_input_of(encoders)
    scores = []
    for begin in range(0, len(mesh_starts), int(batch_size)):
        end = begin + int(batch_size)
        speech = speech_window_inputs(kind, track, speech_starts[begin:end])
        mesh = features.mesh_windows(vertices, mesh_starts[begin:end]).astype(np.float32)
        scores.append(cosine_similarities(encoders.embed_speech(speech), encoders.embed_mesh(mesh)))
    return np.concatenate(scores) if scores else np.zeros(0)


@dataclass(frozen=True)
class ClipPLRS:
    """window_scores: (N,) cosine similarity per non-overlapping 5-frame window; score: their mean."""

    window_scores: np.ndarray

    @property
    def score(self) -> float:
        return float(np.mean(self.window_scores))


def clip_plrs(encoders: SpeechMeshEncoders, samples, rate: int, vertices,
              batch_size: int = DEFAULT_BATCH_SIZE) -> ClipPLRS:
    """PLRS of one clip: float mono `samples` at `rate` Hz and (T, V, 3) absolute vertices at 30 fps."""
    sequence = inputs.vertex_sequence(vertices, "vertices")
    inputs.finite(sequence, "vertices")
    starts = features.window_starts(len(sequence))
    if len(starts) == 0:
        raise MetricError(f"PLRS needs at least {features.WINDOW_FRAMES} frames; the clip has {len(sequence)}")
    track = speech_track(speech_input_of(encoders), samples, rate, len(sequence))
    return ClipPLRS(window_similarities(encoders, track, sequence, starts, starts, batch_size))


def dataset_plrs(clips: list[ClipPLRS]) -> float:
    """PLRS over a dataset: mean of clip scores."""
    if not clips:
        raise MetricError("dataset PLRS needs at least one scored clip; got none")
    return float(np.mean([clip.score for clip in clips]))
