"""Speech-driven generators: run a shipped ONNX generator on audio + a FLAME template, without torch.

The generator contract (what `training/export_generator.py` writes and the Blender add-on loads)
---------------------------------------------------------------------------------------------
A generator is a folder `<models>/generators/<name>/` holding `model.json` and its ONNX file(s).

`model.json` (UTF-8 JSON object):
    name                     str, the folder name
    family                   str, "faceformer" | "kmtalk" | ... (the architecture family)
    description              str, one line for a UI
    fps                      30 (output frame rate; the only value this backend accepts)
    sample_rate              16000 (the audio rate the graph expects; the only value accepted)
    styles                   list[str], the subject styles, in the order of the one-hot `style` input
    default_style            str, one of `styles`
    kind                     "one_shot" (the only kind this version runs; "stepwise" is reserved for
                             autoregressive graphs with a cached state and is refused with ModelError)
    synthetic_training_data  bool, true when trained on the synthetic corpus
    input                    optional str, what the graph hears (contract v2): "audio" (the default when the
                             field is absent: the v1 graphs of the first release) or "speech_features" (the
                             frozen speech front end's features, below)
    anything else (training preset, metrics, licence notes) is kept in GeneratorInfo.metadata.

`one_shot` graph `generator.onnx`, input "audio" (v1):
    inputs   audio     float32 (1, N)        mono, 16 kHz, samples in [-1, 1]
             template  float32 (1, 5023, 3)  the subject's neutral face, metres, FLAME frame
             style     float32 (1, S)        one-hot over `styles`
    output   vertices  float32 (1, T, 5023, 3), T = frame_count(N) (below), absolute positions
`one_shot` graph `generator.onnx`, input "speech_features" (v2):
    inputs   speech_features  float32 (1, T, 447)  the speech front end's features at 30 fps (below)
             template, style  as in v1
    output   vertices  float32 (1, T, 5023, 3), the same T: one output frame per feature frame
The backend computes the features once per take, whatever its length: `backend.speech_frontend` (hama 1.6's
phoneme recogniser, level-normalised, chunked and crossfaded inside) gives (T50, 447) = 191 CTC log-posteriors
then the 256-d hidden layer at 50 Hz, and `speech_frontend.to_mesh_rate` resamples them to T = frame_count(N)
frames at 30 fps (the one 50 -> 30 Hz resampling; training uses the same function). The graph holds its own
normalisation; the front end's ~15 ms bilabial delay (`BILABIAL_DELAY_S`) is the graph's to look past (the
shipped v2 graphs are non-causal). Callers see no difference: `Generator.animate` takes audio either way.
A clip of up to 20 s runs in one call, so the backend's work is O(T) and no Python loop runs per frame.

Long takes (`CHUNK_SAMPLES`, `OVERLAP_SAMPLES`): longer audio (for v2, its feature frames) runs in 20 s chunks that start every 16 s, so
neighbours share 4 s (120 frames) and the graph's memory never grows with the take (a one-shot call on 10 min
would return 1.08 GB and hold several times that in intermediates). In each shared span the two chunks are
crossfaded linearly (the later one's weight rising from 0 to 1), which hides the edge frames where a chunk
lacks context on one side. 20 s keeps a chunk's output at 36 MB and passes 25 % more audio through the graph
than one call would; the 4 s crossfade is wider than the shipped graphs' attention blocks (64 frames). The
graphs are not shift-invariant (periodic positional encoding, attention blocks counted from the clip's start),
so chunked and one-pass outputs differ slightly everywhere, not only at seams (measured in
tests/test_generators_chunked.py: mean 0.1 mm on 70 s of speech, no seam step above the one-pass largest step).
Chunk starts are multiples of 0.1 s (1600 samples = 3 frames), so every chunk's frames fall exactly on the take's
frames. onnxruntime writes each chunk's vertices straight into their place (IO binding): `animate` into the take's
one array (the earlier chunk's overlap is kept aside, then crossfaded in place); `animate_blocks` hands out the
array onnxruntime allocates per chunk (computed in place: one chunk-sized buffer less than a bound output). A graph
whose output is not (1, T, 5023, 3) is refused with ModelError either way.

Output check (one place, `check_output`, applied to every block of `Generator.animate` and `animate_blocks`, so
neither the CLI nor the add-on writes or bakes what it refuses): every value finite, and no vertex farther than
`MAX_DISPLACEMENT_M` = 0.10 m from the template. Speech moves the jaw and lips by at most a few centimetres
(the shipped generators peak at 1.2-2.0 cm on the sample sentence; a wide-open human mouth is ~5 cm); 10 cm is
half a FLAME head's height, so beyond it the graph is broken (NaN or bit-flipped weights give NaN or 1e34 m),
not a face speaking. Failing outputs raise ModelError.

Lip closure guard (`backend.closure_guard`, on unless `lip_closure=False`): for graphs that hear the front end,
every block is shut where the front end or the bilabial detector (`backend.bilabial_detector`, Whisper tiny.en's
encoder and a probe) heard /p b m/ and the graph left the lips open, after the crossfade and
before the output check (each frame once). v1 graphs (input "audio") run without it: they have no front end.

Frame count rule (used everywhere: graphs, training targets, this runner): T = round-half-up(N * 30 / 16000),
i.e. the number of 30 fps frames whose start lies in the audio, rounded to the nearest frame.

The default generator (`DEFAULT_FILE`, read once into `DEFAULT_GENERATOR`): `python -m training choose-default`
runs the real-speech benchmark over the shipped generators and writes {"name": ..., "rule": ..., "scores": ...};
`backend animate` without --model, the add-on's panel and the benchmark's close-ups use that name. Without the
file (or when it names no usable generator) the first usable generator by name is the default.

Python API: `scan_generators`, `list_generators`, `load_generator`, `Generator.animate`,
`Generator.animate_blocks`, `default_models_dir`, `frame_count`, `chunk_starts`, `DEFAULT_GENERATOR` (the name a
UI should preselect).
"""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
from backend import audio as audio_io
from backend import models
from backend.bilabial_detector import load_detector
from backend.closure_guard import DEFAULT_SETTINGS, ClosureGuard, closure_weights
from backend.errors import BackendError, MeshError, ModelError
from backend.flame import NUM_VERTICES
from backend.frame_rate import MESH_FPS
from backend.onnx_session import open_session
from backend.speech_frontend import (FEATURE_DIM, POSTERIOR_DIM, frame_count as frontend_frame_count, load_frontend,
                                     to_mesh_rate)

SAMPLE_RATE = 16_000
MODEL_FILE = "model.json"
ONE_SHOT_FILE = "generator.onnx"
GENERATORS = "generators"
DEFAULT_FILE = "default.json"   # <models>/generators/default.json: the generator a UI preselects (below)
MAX_DISPLACEMENT_M = 0.10   # see "Output check" above
CHUNK_SAMPLES, OVERLAP_SAMPLES = 20 * SAMPLE_RATE, 4 * SAMPLE_RATE   # see "Long takes" above
KINDS = ("one_shot",)
RESERVED_KINDS = ("stepwise",)
INPUT_AUDIO, INPUT_TEMPLATE, INPUT_STYLE = "audio", "template", "style"
INPUT_SPEECH_FEATURES = "speech_features"
INPUTS = (INPUT_AUDIO, INPUT_SPEECH_FEATURES)   # the values of model.json's optional "input" field
OUTPUT_VERTICES = "vertices"
REQUIRED_FIELDS = {"name": str, "family": str, "description": str, "fps": int, "sample_rate": int,
                   "styles": list, "default_style": str, "kind": str, "synthetic_training_data": bool}


class Cancelled(BackendError):
    """The caller's should_cancel() turned true while a generator was running."""


def frame_count(num_samples: int, sample_rate: int = SAMPLE_RATE) -> int:
    """Number of 30 fps frames for `num_samples` of audio: round-half-up(num_samples * 30 / sample_rate)."""
    return (2 * int(num_samples) * MESH_FPS + int(sample_rate)) // (2 * int(sample_rate))


def default_models_dir() -> Path:
    """Folder holding the generator folders: `models/generators` beside `backend` (repo or add-on bundle)."""
    return models.default_models_dir(GENERATORS)


@dataclass(frozen=True)
class GeneratorInfo:
    """A generator's validated model.json; `path` is its folder, `metadata` the fields beyond the contract."""

    name: str
    family: str
    description: str
    path: Path
    styles: tuple
    default_style: str
    kind: str
    synthetic_training_data: bool
    fps: int = MESH_FPS
    sample_rate: int = SAMPLE_RATE
    input: str = INPUT_AUDIO
    metadata: dict = field(default_factory=dict, compare=False)


def read_default_generator(models_dir=None) -> str:
    """The default generator's name: `DEFAULT_FILE`'s "name" when that generator is usable under `models_dir`
    (default: the shipped folder), else the first usable generator by name, else ""."""
    root = Path(models_dir) if models_dir is not None else default_models_dir()
    names = [info.name for info in list_generators(root)]
    try:
        chosen = json.loads((root / DEFAULT_FILE).read_text(encoding="utf-8")).get("name")
    except (OSError, ValueError, AttributeError):
        chosen = None
    return chosen if chosen in names else (names[0] if names else "")


def read_generator_info(folder) -> GeneratorInfo:
    """Read and validate `folder/model.json`; ModelError says what is missing or wrong."""
    folder = Path(folder)
    path = folder / MODEL_FILE
    if not path.is_file():
        raise ModelError(f"{folder}: no {MODEL_FILE}; a generator folder needs {MODEL_FILE} and {ONE_SHOT_FILE}")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(values, dict):
        raise ModelError(f"{path}: holds a JSON {type(values).__name__}; expected an object")
    for key, kind in REQUIRED_FIELDS.items():
        if key not in values:
            raise ModelError(f"{path}: missing field '{key}'; required: {', '.join(REQUIRED_FIELDS)}")
        if not isinstance(values[key], kind) or (kind is int and isinstance(values[key], bool)):
            raise ModelError(f"{path}: field '{key}' is {values[key]!r}; expected a {kind.__name__}")
    if values["kind"] in RESERVED_KINDS:
        raise ModelError(f"{path}: kind '{values['kind']}' is not supported by this backend version; "
                         f"supported: {', '.join(KINDS)}")
    if values["kind"] not in KINDS:
        raise ModelError(f"{path}: unknown kind '{values['kind']}'; expected one of {', '.join(KINDS)}")
    for key, expected in (("fps", MESH_FPS), ("sample_rate", SAMPLE_RATE)):
        if values[key] != expected:
            raise ModelError(f"{path}: {key} is {values[key]}; this backend runs generators with {key} {expected}")
    styles = values["styles"]
    if not styles or not all(isinstance(style, str) for style in styles) or len(set(styles)) != len(styles):
        raise ModelError(f"{path}: 'styles' is {styles!r}; expected a non-empty list of distinct names")
    if values["default_style"] not in styles:
        raise ModelError(f"{path}: default_style '{values['default_style']}' is not one of the styles {styles}")
    graph_input = values.get("input", INPUT_AUDIO)
    if graph_input not in INPUTS:
        raise ModelError(f"{path}: field 'input' is {graph_input!r}; expected one of {', '.join(INPUTS)} "
                         "(absent means audio)")
    metadata = {key: value for key, value in values.items() if key not in REQUIRED_FIELDS and key != "input"}
    return GeneratorInfo(name=values["name"], family=values["family"], description=values["description"],
                         path=folder, styles=tuple(styles), default_style=values["default_style"],
                         kind=values["kind"], synthetic_training_data=values["synthetic_training_data"],
                         input=graph_input, metadata=metadata)


def scan_generators(models_dir=None) -> tuple:
    """(GeneratorInfo of every usable generator under `models_dir` (default: the shipped ones), sorted by name;
    [(folder name, reason)] of every broken one). A folder without model.json is not a generator and is skipped;
    one whose model.json is invalid or whose graph file is missing is listed as broken, so one bad folder never
    hides the good ones."""
    root = Path(models_dir) if models_dir is not None else default_models_dir()
    if not root.is_dir():
        return [], []
    infos, broken = [], []
    for folder in sorted(child for child in root.iterdir() if _holds_model_file(child)):
        try:
            info = read_generator_info(folder)
            if not (folder / ONE_SHOT_FILE).is_file():
                raise ModelError(f"{folder}: no {ONE_SHOT_FILE} beside {MODEL_FILE}")
        except ModelError as error:
            broken.append((folder.name, str(error)))
        except OSError as error:   # e.g. an unreadable model.json
            broken.append((folder.name, f"{folder / MODEL_FILE}: cannot be read ({error.strerror})"))
        else:
            infos.append(info)
    return infos, broken


def _holds_model_file(folder: Path) -> bool:
    """Whether `folder` has a model.json; a folder that cannot be looked into counts (it is then listed as broken
    with the reason), so that an unreadable folder never breaks the scan (or the import that reads the default)."""
    try:
        return (folder / MODEL_FILE).is_file()
    except OSError:
        return True


def list_generators(models_dir=None) -> list:
    """The usable generators of `scan_generators` (broken folders left out)."""
    return scan_generators(models_dir)[0]


def _resolve(path_or_name, models_dir) -> Path:
    candidate = Path(path_or_name)
    if candidate.is_dir():
        return candidate
    root = Path(models_dir) if models_dir is not None else default_models_dir()
    named = root / str(path_or_name)
    if named.is_dir():
        return named
    known = [info.name for info in list_generators(root)] if root.is_dir() else []
    raise ModelError(f"generator '{path_or_name}' not found: it is neither a folder nor a name under {root} "
                     f"(available: {', '.join(known) or 'none'})")


def load_generator(path_or_name, models_dir=None, threads: int = 1) -> "Generator":
    """Open a generator by folder path or by name under `models_dir`; ModelError if missing or corrupt."""
    info = read_generator_info(_resolve(path_or_name, models_dir))
    return Generator(info, threads)


def _session(path: Path, threads: int):
    if not path.is_file():
        raise ModelError(f"{path}: generator graph not found; a '{KINDS[0]}' generator needs {ONE_SHOT_FILE}")
    return open_session(path, threads)


class Generator:
    """A loaded one-shot generator. `animate` turns audio + template into (T, 5023, 3) float32 at 30 fps."""

    def __init__(self, info: GeneratorInfo, threads: int = 1):
        self.info = info
        path = info.path / ONE_SHOT_FILE
        self.session = _session(path, threads)
        inputs = {item.name: item.shape for item in self.session.get_inputs()}
        speech, rank, shape = ((INPUT_AUDIO, 2, "(1, N)") if info.input == INPUT_AUDIO
                               else (INPUT_SPEECH_FEATURES, 3, f"(1, T, {FEATURE_DIM})"))
        expected = {speech: rank, INPUT_TEMPLATE: 3, INPUT_STYLE: 2}
        if set(inputs) != set(expected) or any(len(inputs[name]) != rank for name, rank in expected.items()):
            raise ModelError(f"{path}: graph inputs are {inputs}; {MODEL_FILE} says input '{info.input}', for which "
                             f"the generator contract needs {speech} {shape}, template (1, {NUM_VERTICES}, 3) and "
                             f"style (1, {len(info.styles)})")
        if info.input == INPUT_SPEECH_FEATURES and inputs[speech][2] not in (FEATURE_DIM, None) \
                and isinstance(inputs[speech][2], int):
            raise ModelError(f"{path}: speech_features input has width {inputs[speech][2]}; the speech front end "
                             f"gives {FEATURE_DIM} values per frame")
        style_width = inputs[INPUT_STYLE][1]
        if isinstance(style_width, int) and style_width != len(info.styles):
            raise ModelError(f"{path}: style input has width {style_width} but {MODEL_FILE} lists "
                             f"{len(info.styles)} styles")
        outputs = [item.name for item in self.session.get_outputs()]
        if outputs != [OUTPUT_VERTICES]:
            raise ModelError(f"{path}: graph outputs are {outputs}; the generator contract needs '{OUTPUT_VERTICES}'")

    @property
    def styles(self) -> tuple:
        return self.info.styles

    def style_vector(self, style: Optional[str]) -> np.ndarray:
        """(1, S) one-hot of `style` (None = the default style); ModelError for an unknown style."""
        style = self.info.default_style if style is None else style
        if style not in self.info.styles:
            raise ModelError(f"unknown style '{style}' for generator '{self.info.name}'; "
                             f"expected one of {', '.join(self.info.styles)}")
        vector = np.zeros((1, len(self.info.styles)), dtype=np.float32)
        vector[0, self.info.styles.index(style)] = 1.0
        return vector

    def animate(self, audio: np.ndarray, sample_rate: int, template: np.ndarray, style: Optional[str] = None,
                progress: Optional[Callable[[float], None]] = None,
                should_cancel: Optional[Callable[[], bool]] = None,
                frontend_features: Optional[np.ndarray] = None, lip_closure: bool = True) -> np.ndarray:
        """audio (N,) float in [-1, 1] at `sample_rate` Hz, template (5023, 3) metres -> (T, 5023, 3) float32,
        T = frame_count(N at 16 kHz): the blocks of `animate_blocks` (same arguments), each chunk written by the
        graph straight into one preallocated array (no copy of the take)."""
        checkpoint = self._checkpoint(progress, should_cancel)
        take = self._prepare(audio, sample_rate, template, style, checkpoint, frontend_features, lip_closure)
        vertices = np.empty((take.frames, NUM_VERTICES, 3), dtype=np.float32)
        for _ in self._chunks(take, checkpoint, vertices):
            pass
        return vertices

    def animate_blocks(self, audio: np.ndarray, sample_rate: int, template: np.ndarray,
                       style: Optional[str] = None, progress: Optional[Callable[[float], None]] = None,
                       should_cancel: Optional[Callable[[], bool]] = None,
                       frontend_features: Optional[np.ndarray] = None, lip_closure: bool = True) -> Iterator:
        """The animation as it is made, so a long take never exists whole: first yields T (the frame count),
        then (first frame, (F, 5023, 3) float32 block) in order, blocks covering frames 0..T-1 once each, every
        block already through `check_output`. Audio longer than CHUNK_SAMPLES runs in overlapping chunks
        (see "Long takes" above). progress(fraction) is called with values in [0, 1]; Cancelled is raised as
        soon as should_cancel() is true. Bad audio -> AudioError, bad template -> MeshError, unknown style or
        a graph failure -> ModelError. frontend_features: the take's (T50, 447) front-end features at 50 Hz
        (`speech_frontend_features`) when the caller has them already (the add-on scores with them too).
        lip_closure: run the lip closure guard (see "Lip closure guard" above; generators that hear the front end)."""
        checkpoint = self._checkpoint(progress, should_cancel)
        take = self._prepare(audio, sample_rate, template, style, checkpoint, frontend_features, lip_closure)
        yield take.frames
        yield from self._chunks(take, checkpoint, None)

    def _checkpoint(self, progress, should_cancel) -> Callable[[float], None]:
        """checkpoint(fraction): raise Cancelled when should_cancel() is true, else report the progress."""
        report = progress or (lambda fraction: None)
        stop = should_cancel or (lambda: False)

        def checkpoint(fraction: float) -> None:
            if stop():
                raise Cancelled(f"animation with generator '{self.info.name}' was cancelled")
            report(fraction)
        return checkpoint

    def _prepare(self, audio, sample_rate: int, template, style, checkpoint, frontend_features=None,
                 lip_closure: bool = True) -> "_Take":
        """The checked inputs of one take: 16 kHz samples, template, style one-hot, the graph's speech input
        (the samples for v1, the whole take's front-end features for v2, computed once unless given) and, for v2
        with `lip_closure`, the lip closure guard's weights."""
        checkpoint(0.0)
        samples = prepared_samples(audio, sample_rate)
        template = _checked_template(template)
        style_vector = self.style_vector(style)
        frames = frame_count(samples.size)
        closure = guard = None
        if self.info.input == INPUT_AUDIO:
            speech = samples
        else:
            frontend_features = checked_frontend_features(samples, frontend_features)
            speech = to_mesh_rate(frontend_features, frames)
            if lip_closure:
                bilabial = (load_detector().probabilities(samples) if DEFAULT_SETTINGS.detector_threshold is not None
                            else None)
                closure = closure_weights(frontend_features[:, :POSTERIOR_DIM], frames, bilabial=bilabial)
                guard = ClosureGuard(template)
        checkpoint(0.2 if self.info.input == INPUT_SPEECH_FEATURES else 0.1)
        return _Take(samples, speech, template, style_vector, frames, closure, guard)

    def _chunks(self, take: "_Take", checkpoint, vertices: Optional[np.ndarray]) -> Iterator:
        """(first frame, checked block) of every chunk of `take`, crossfaded in the overlaps. With `vertices`
        (the take's (T, 5023, 3) array) each chunk is written in place and the blocks are views of it; without,
        each chunk gets its own array (the blocks of a streamed take)."""
        starts = chunk_starts(take.samples.size)
        overlap = OVERLAP_SAMPLES * MESH_FPS // SAMPLE_RATE
        fade = ((np.arange(overlap, dtype=np.float32) + 0.5) / overlap)[:, None, None]   # the later chunk's weight
        previous = np.empty((overlap, NUM_VERTICES, 3), dtype=np.float32) if len(starts) > 1 else None
        for index, start in enumerate(starts):
            last = index == len(starts) - 1
            first = start * MESH_FPS // SAMPLE_RATE
            if self.info.input == INPUT_AUDIO:
                piece = take.samples[start:] if last else take.samples[start:start + CHUNK_SAMPLES]
                frames = frame_count(piece.size)
            else:
                frames = take.frames - first if last else frame_count(CHUNK_SAMPLES)
                piece = take.speech[first:first + frames]
            chunk = self._run(piece, frames, take.template, take.style_vector,
                              None if vertices is None else vertices[first:first + frames])
            head = chunk[:overlap]
            if index:   # previous * (1 - fade) + chunk * fade, in place
                head -= previous
                head *= fade
                head += previous
            if not last:   # kept before the next chunk overwrites it (in place) or it is handed out
                np.copyto(previous, chunk[frames - overlap:])
            block = chunk if last else chunk[:frames - overlap]
            if take.guard is not None:   # each frame is in exactly one block, so it is closed once
                take.guard.apply(block, take.closure[first:first + len(block)])
            yield first, check_output(block, take.template, f"generator '{self.info.name}'", first_frame=first)
            del chunk, block, head   # a streamed chunk's array is freed before the next one is made
            checkpoint(0.2 + 0.8 * (index + 1) / len(starts))

    def _run(self, speech: np.ndarray, frames: int, template: np.ndarray, style_vector: np.ndarray,
             out: Optional[np.ndarray] = None) -> np.ndarray:
        """One graph call on (N,) float32 samples or (frames, 447) features -> (frames, 5023, 3) float32.

        With `out` (C-contiguous float32 of that shape, e.g. the chunk's place in the take) onnxruntime writes into
        it (IO binding), so the take is never copied; without, the array onnxruntime allocates is returned (it
        may compute the graph's last node in place, which a bound output cannot: one chunk-sized buffer less
        for a streamed take)."""
        expected = (1, frames, NUM_VERTICES, 3)
        feeds = {self.info.input: np.ascontiguousarray(speech[None], dtype=np.float32),
                 INPUT_TEMPLATE: template[None], INPUT_STYLE: style_vector}
        try:
            if out is None:
                (vertices,) = self.session.run([OUTPUT_VERTICES], feeds)
            else:
                binding = self.session.io_binding()
                for name, value in feeds.items():
                    binding.bind_cpu_input(name, value)
                binding.bind_output(OUTPUT_VERTICES, "cpu", 0, np.float32, list(expected), out.ctypes.data)
                self.session.run_with_iobinding(binding)
                vertices = out[None]
        except Exception as error:  # shape errors inside the graph surface as onnxruntime exceptions
            message = str(error).splitlines()[0]
            computed = re.search(r"Requested shape:\{([0-9,]*)\}", message)   # not the bound output's shape
            if computed:
                raise ModelError(f"generator '{self.info.name}' returned vertices of shape "
                                 f"({computed.group(1).replace(',', ', ')}); the contract requires {expected}") from None
            raise ModelError(f"generator '{self.info.name}' failed on {self.info.input} of shape {speech.shape}: "
                             f"{message}") from None
        if vertices.shape != expected:
            raise ModelError(f"generator '{self.info.name}' returned vertices of shape {vertices.shape}; "
                             f"the contract requires {expected}")
        return np.ascontiguousarray(vertices[0], dtype=np.float32)


@dataclass(frozen=True)
class _Take:
    """One take's checked inputs (Generator._prepare): samples (N,) 16 kHz float32, speech (the graph's input:
    the samples or (T, 447) features), template (5023, 3), style_vector (1, S), frames T; closure (T,) weights and
    guard (the lip closure guard) or None when it does not run."""

    samples: np.ndarray
    speech: np.ndarray
    template: np.ndarray
    style_vector: np.ndarray
    frames: int
    closure: Optional[np.ndarray] = None
    guard: Optional[ClosureGuard] = None


DEFAULT_GENERATOR = read_default_generator()   # the name a UI should preselect (see "The default generator")


def prepared_samples(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """What a generator hears of `audio`: float32 at 16 kHz, clipped to [-1, 1] (AudioError for bad audio)."""
    samples = audio_io.check_samples(audio, sample_rate)
    return np.clip(audio_io.resample(samples, sample_rate, SAMPLE_RATE).astype(np.float32), -1.0, 1.0)


def speech_frontend_features(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """(T50, 447) float32: the shipped speech front end's features at 50 Hz of what a generator hears of `audio`
    (`prepared_samples`), the features `animate_blocks` resamples for a v2 graph."""
    return load_frontend().features(prepared_samples(audio, sample_rate)).stacked()


def checked_frontend_features(samples: np.ndarray, frontend_features: Optional[np.ndarray] = None) -> np.ndarray:
    """(N,) 16 kHz float32 samples -> their (T50, 447) front-end features at 50 Hz: the shipped speech front end's,
    or `frontend_features` already computed on these samples once their shape is checked (ModelError if not)."""
    if frontend_features is None:
        return load_frontend().features(samples).stacked()
    if frontend_features.shape != (frontend_frame_count(samples.size), FEATURE_DIM):
        raise ModelError(f"front-end features of shape {frontend_features.shape} do not belong to {samples.size} "
                         f"samples at 16 kHz; expected ({frontend_frame_count(samples.size)}, {FEATURE_DIM})")
    return frontend_features


def speech_features(samples: np.ndarray, frontend_features: Optional[np.ndarray] = None) -> np.ndarray:
    """(N,) 16 kHz float32 samples -> (frame_count(N), 447) float32: the v2 graphs' input (the front-end features
    of `checked_frontend_features`, then `to_mesh_rate`), for a whole take."""
    return to_mesh_rate(checked_frontend_features(samples, frontend_features), frame_count(samples.size))


def chunk_starts(num_samples: int) -> list:
    """First sample of each graph call for `num_samples` of 16 kHz audio: [0] up to CHUNK_SAMPLES, else every
    CHUNK_SAMPLES - OVERLAP_SAMPLES, the last chunk taking the rest (between OVERLAP_SAMPLES and CHUNK_SAMPLES
    long, so no chunk is a sliver)."""
    step = CHUNK_SAMPLES - OVERLAP_SAMPLES
    starts = [0]
    while num_samples - starts[-1] > CHUNK_SAMPLES:
        starts.append(starts[-1] + step)
    return starts


def check_output(vertices: np.ndarray, template: np.ndarray, source: str, first_frame: int = 0) -> np.ndarray:
    """`vertices` (T, 5023, 3) if every value is finite and no vertex moves more than MAX_DISPLACEMENT_M from
    `template` (5023, 3); else ModelError naming the first bad frame (the graph or its weights are corrupt;
    frames are numbered from `first_frame`, the block's place in the take).

    Chunks of 256 frames, no temporary of a chunk's size: the per-vertex max and min over a chunk's frames give
    its largest coordinate change (NaN and inf propagate), which bounds the distance (|d| <= sqrt(3) max|d_i|),
    so the exact distance is computed only for a chunk that could fail."""
    for start in range(0, len(vertices), 256):
        chunk = vertices[start:start + 256]
        largest = float(max(np.max(chunk.max(axis=0) - template), np.max(template - chunk.min(axis=0))))
        if not np.isfinite(largest):
            finite = np.isfinite(vertices).all(axis=(1, 2))
            raise ModelError(f"{source} produced NaN or infinite vertices in {int(np.count_nonzero(~finite))} of "
                             f"{len(vertices)} frames (first: frame {first_frame + int(np.argmin(finite))}); its "
                             "weights are corrupt: reinstall or re-export the generator")
        if largest * np.sqrt(3.0) <= MAX_DISPLACEMENT_M:
            continue
        distance = np.sqrt(((chunk - template[None]) ** 2).sum(axis=-1)).max(axis=1)
        if distance.max() > MAX_DISPLACEMENT_M:
            frame = first_frame + start + int(np.argmax(distance > MAX_DISPLACEMENT_M))
            raise ModelError(f"{source} moved a vertex {float(distance.max()):.3g} m from the template (frame "
                             f"{frame}); a speaking face moves at most {MAX_DISPLACEMENT_M} m, so its weights are "
                             "corrupt: reinstall or re-export the generator")
    return vertices


def _checked_template(template) -> np.ndarray:
    template = np.asarray(template)
    if template.shape != (NUM_VERTICES, 3):
        raise MeshError(f"template has shape {template.shape}; expected ({NUM_VERTICES}, 3) FLAME vertices in metres")
    if not np.issubdtype(template.dtype, np.number) or not np.all(np.isfinite(template)):
        raise MeshError("template has NaN, infinite or non-numeric values; expected finite FLAME vertices")
    return template.astype(np.float32)
