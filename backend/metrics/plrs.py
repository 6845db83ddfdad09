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

What the mesh encoder reads (optional, for speed): a mesh encoder that reads only some vertex positions (the
shipped ones gather 3,000 of the 15,069 values, on 1,404 vertices, before anything else) may say so in the
folder's `representation.json` as "mesh_vertices": the sorted FLAME vertex ids it reads. `mesh_vertices` of the
encoder pair is then those ids (else None: all), and a clip known only at a superset of them (`vertex_ids` of
`clip_plrs`) is scored exactly as the full clip: the windows are widened to full frames with zeros at the
vertices the encoder does not read. The claim is checked when the folder is opened (one probe window whose
unread values are changed must embed bit for bit the same), so a wrong list is a ModelError, never a wrong score.

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
from backend.flame import NUM_VERTICES, VERTEX_VALUES
from backend.metrics import inputs
from backend.onnx_session import open_session
from backend.models import PLRS_EVALUATOR, default_models_dir

SPEECH_ENCODER_FILE = "speech_encoder.onnx"
MESH_ENCODER_FILE = "mesh_encoder.onnx"
EVALUATOR_FILE = "evaluator.json"
REPRESENTATION_FILE = "representation.json"   # the export's metadata; its optional "mesh_vertices" (see above)
MESH_VERTICES_FIELD = "mesh_vertices"
FBANK_INPUT, FRONTEND_INPUT = "fbank", "frontend"
MESH_INPUT, EMBEDDING_OUTPUT = "vertices", "embedding"
FRONTEND_DIM = 447   # backend.speech_frontend.FEATURE_DIM (log-posteriors + hidden layer)
SPEECH_INPUT_SHAPES = {FBANK_INPUT: (features.FBANK_FRAMES, features.FBANK_BINS),
                       FRONTEND_INPUT: (features.WINDOW_FRAMES, FRONTEND_DIM)}
DEFAULT_BATCH_SIZE = 64


class SpeechMeshEncoders(Protocol):
    """A speech encoder and a mesh encoder that map matching windows to nearby D-dim embeddings.
    `speech_input` (optional attribute): FBANK_INPUT (the default) or FRONTEND_INPUT; `mesh_vertices`
    (optional attribute): the sorted vertex ids the mesh encoder reads, None (the default) for all."""

    def embed_speech(self, speech: np.ndarray) -> np.ndarray:
        """(B, 20, 128) normalised fbank or (B, 5, 447) front-end features, float32 -> (B, D)."""

    def embed_mesh(self, vertices: np.ndarray) -> np.ndarray:
        """(B, 5, V, 3) float32 absolute vertex positions -> (B, D)."""


class OnnxSpeechMeshEncoders:
    """The contract's two ONNX models run with onnxruntime on the CPU (no spinning threads, so a UI
    thread stays responsive). Missing, corrupt or mismatched models raise ModelError."""

    def __init__(self, speech_path, mesh_path, threads: int = 1, mesh_vertices=None):
        self.speech = _open_session(Path(speech_path), SPEECH_INPUT_SHAPES, threads)
        self.speech_input = self.speech.get_inputs()[0].name
        self.mesh = _open_session(Path(mesh_path), {MESH_INPUT: (features.WINDOW_FRAMES, None)}, threads)
        self.mesh_width = self.mesh.get_inputs()[0].shape[2]
        self.mesh_vertices = None if mesh_vertices is None else self._checked_reads(mesh_vertices, Path(mesh_path))

    @classmethod
    def from_directory(cls, directory, threads: int = 1) -> "OnnxSpeechMeshEncoders":
        """Load SPEECH_ENCODER_FILE and MESH_ENCODER_FILE from one folder, with the vertices the mesh encoder
        reads when its REPRESENTATION_FILE lists them."""
        directory = Path(directory)
        return cls(directory / SPEECH_ENCODER_FILE, directory / MESH_ENCODER_FILE, threads,
                   read_mesh_vertices(directory))

    def _checked_reads(self, mesh_vertices, path: Path) -> np.ndarray:
        """`mesh_vertices` as sorted unique int64 ids, if the mesh encoder's output indeed ignores every other
        vertex: a probe window embeds bit for bit the same after the other vertices are changed."""
        ids = np.unique(np.asarray(mesh_vertices, dtype=np.int64))
        if self.mesh_width != VERTEX_VALUES or ids.size == 0 or ids[0] < 0 or ids[-1] >= NUM_VERTICES:
            raise ModelError(f"{path}: {REPRESENTATION_FILE} lists {ids.size} mesh vertices (ids {ids.min(initial=0)}"
                             f"..{ids.max(initial=0)}) for an encoder of {self.mesh_width} values; expected FLAME "
                             f"vertex ids 0..{NUM_VERTICES - 1} of a {VERTEX_VALUES}-value encoder")
        rng = np.random.default_rng(0)
        probe = (0.1 * rng.standard_normal((1, features.WINDOW_FRAMES, NUM_VERTICES, 3))).astype(np.float32)
        changed = probe.copy()
        unread = np.setdiff1d(np.arange(NUM_VERTICES), ids)
        changed[:, :, unread] = rng.standard_normal((1, features.WINDOW_FRAMES, len(unread), 3))
        if not np.array_equal(self.embed_mesh(probe), self.embed_mesh(changed)):
            raise ModelError(f"{path}: {REPRESENTATION_FILE} says the mesh encoder reads {ids.size} vertices, but its "
                             "output changes with the others; remove the \"mesh_vertices\" entry or re-export")
        return ids

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


def read_mesh_vertices(directory) -> Optional[list]:
    """The "mesh_vertices" list of `<directory>/representation.json`, or None (no file, or no such entry)."""
    path = Path(directory) / REPRESENTATION_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8")).get(MESH_VERTICES_FIELD)
    except (ValueError, AttributeError) as error:
        raise ModelError(f"{path}: not a JSON object ({error})") from None


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


def speech_track(kind: str, samples, rate: int, num_frames: int, frontend_features=None) -> np.ndarray:
    """One clip's speech, prepared once for `speech_window_inputs`: the 19.2 kHz samples (FBANK_INPUT) or the
    (num_frames, 447) front-end features at 30 fps (FRONTEND_INPUT; frame j pairs with mesh frame j).
    `frontend_features`: the clip's (T50, 447) front-end features at 50 Hz (`SpeechFeatures.stacked()` of these
    samples) when the caller has them already (the add-on's generator computed them), so they are not recomputed."""
    if kind == FBANK_INPUT:
        return speech_at_plrs_rate(samples, rate)
    from backend.speech_frontend import features_at_fps, load_frontend   # only PLRS on front-end features needs it
    if frontend_features is not None:
        return features_at_fps(frontend_features, int(num_frames))
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1 or samples.size == 0:
        raise MetricError(f"speech samples: expected non-empty mono audio of shape (n,); got shape {samples.shape}")
    inputs.finite(samples, "speech samples")
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


def check_reads(encoders: SpeechMeshEncoders, vertex_ids) -> Optional[np.ndarray]:
    """`vertex_ids` (the vertices a clip is known at) as an int64 array when the mesh encoder reads only vertices
    among them (`mesh_vertices`), None for None; MetricError when the encoder needs vertices the clip lacks."""
    if vertex_ids is None:
        return None
    vertex_ids = np.asarray(vertex_ids, dtype=np.int64)
    reads = getattr(encoders, "mesh_vertices", None)
    missing = NUM_VERTICES - len(vertex_ids) if reads is None else np.setdiff1d(reads, vertex_ids).size
    if missing:
        raise MetricError(f"the mesh encoder reads {missing} vertices the clip was not rebuilt at; PLRS needs "
                          "every vertex the encoder reads")
    return vertex_ids


def mesh_window_inputs(vertices: np.ndarray, starts: np.ndarray, vertex_ids: Optional[np.ndarray] = None) -> np.ndarray:
    """(B, 5, V, 3) float32 mesh windows at `starts`; a clip known at `vertex_ids` only is widened to full
    FLAME frames with zeros at the other vertices (which the encoder does not read: check_reads)."""
    windows = features.mesh_windows(vertices, starts)
    if vertex_ids is None:
        return windows.astype(np.float32)
    rows = len(starts) * features.WINDOW_FRAMES
    full = np.zeros((rows, VERTEX_VALUES), dtype=np.float32)
    full[:, (3 * vertex_ids[:, None] + np.arange(3)).ravel()] = windows.reshape(rows, -1)   # ~2x faster than per vertex
    return full.reshape(len(starts), features.WINDOW_FRAMES, NUM_VERTICES, 3)


def window_similarities(encoders: SpeechMeshEncoders, track: np.ndarray, vertices: np.ndarray,
                        mesh_starts: np.ndarray, speech_starts: np.ndarray,
                        batch_size: int = DEFAULT_BATCH_SIZE, vertex_ids=None) -> np.ndarray:
    """(N,) cosine similarity of mesh windows at `mesh_starts` and speech windows at `speech_starts`
    (frame indices, paired element-wise; `track` from `speech_track`), computed `batch_size` windows at a time.
    vertex_ids: `vertices` is (T, K, 3), the clip at these K FLAME vertices only (see check_reads)."""
    if int(batch_size) < 1:
        raise MetricError(f"batch_size must be a positive integer; got {batch_size!r}")
    kind = speech_input_of(encoders)
    vertex_ids = check_reads(encoders, vertex_ids)
    scores = []
    for begin in range(0, len(mesh_starts), int(batch_size)):
        end = begin + int(batch_size)
        speech = speech_window_inputs(kind, track, speech_starts[begin:end])
        mesh = mesh_window_inputs(vertices, mesh_starts[begin:end], vertex_ids)
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
              batch_size: int = DEFAULT_BATCH_SIZE, vertex_ids=None, frontend_features=None) -> ClipPLRS:
    """PLRS of one clip: float mono `samples` at `rate` Hz and (T, V, 3) absolute vertices at 30 fps.
    vertex_ids: the clip is (T, K, 3) at these K FLAME vertices only, a superset of what the mesh encoder reads
    (the same score as the full clip; see "What the mesh encoder reads"). frontend_features: see speech_track."""
    sequence = inputs.vertex_sequence(vertices, "vertices")
    inputs.finite(sequence, "vertices")
    starts = features.window_starts(len(sequence))
    if len(starts) == 0:
        raise MetricError(f"PLRS needs at least {features.WINDOW_FRAMES} frames; the clip has {len(sequence)}")
    track = speech_track(speech_input_of(encoders), samples, rate, len(sequence), frontend_features)
    return ClipPLRS(window_similarities(encoders, track, sequence, starts, starts, batch_size, vertex_ids))


def dataset_plrs(clips: list[ClipPLRS]) -> float:
    """PLRS over a dataset: mean of clip scores."""
    if not clips:
        raise MetricError("dataset PLRS needs at least one scored clip; got none")
    return float(np.mean([clip.score for clip in clips]))
