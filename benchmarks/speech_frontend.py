"""Speech front end speed and memory, beside the shipped generators' whole inference in the same run.

60 s of real speech (dev and Kathleen held-out clips from ../shared, concatenated; read only) through
`backend.speech_frontend` (`features`: level, chunks, crossfade; onnxruntime and numpy on one thread) and through every
shipped generator (`backend.generators`, onnxruntime, one thread) — best of `--repeats`, wall and process CPU
time, as multiples of real time, and the front end's time as a share of each generator's. Also the unshipped
candidate, Whisper tiny.en's encoder (scripts/convert_whisper_encoder.py's graph, when `--whisper` exists): numpy
log-mel plus onnxruntime on back-to-back 30 s pieces at their real length (speed only: no overlap); and the unshipped
int8 candidate (scripts/quantize_hama_asr.py's graph, when `--int8` exists) through the same `features`, with its
parity against the shipped graph on the same audio: frame-argmax agreement, mean |Δ posterior| and the hidden
layer's relative error (‖Δ‖ / ‖hidden‖). Memory: the peak
resident memory a fresh process adds running `features` on 60 s and on 600 s, after a 25 s warm-up run,
minus the output itself (T × 447 float32) — what the length adds beyond the output.

    .venv/bin/python benchmarks/speech_frontend.py [--repeats 3] [--seconds 60] [--whisper PATH] [--int8 PATH]
"""

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"   # before numpy loads its BLAS: one thread, as the target says

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.audio import load_audio  # noqa: E402
from backend.generators import SAMPLE_RATE, list_generators, load_generator  # noqa: E402
from backend.speech_frontend import SpeechFrontend, load_frontend  # noqa: E402

SHARED = REPO.parent / "shared" / "speech"


def real_speech(seconds: float) -> np.ndarray:
    """`seconds` of real speech: the dev clips then held-out Kathleen takes, concatenated (16 kHz)."""
    paths = sorted((SHARED / "dev").glob("*.flac")) + sorted((SHARED / "kathleen").glob("arctic_a0??8_*.flac"))
    pieces, length = [], 0
    for path in paths:
        if length >= seconds * SAMPLE_RATE:
            break
        pieces.append(load_audio(path, rate=SAMPLE_RATE)[0])
        length += pieces[-1].size
    return np.concatenate(pieces)[:int(seconds * SAMPLE_RATE)]


def timed(work, repeats: int) -> tuple:
    """Best (wall, process CPU) seconds of `repeats` runs after one warm-up."""
    work()
    runs = []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        work()
        runs.append((time.perf_counter() - wall, time.process_time() - cpu))
    return min(run[0] for run in runs), min(run[1] for run in runs)


MEMORY_PROBE = """
import resource, sys
import numpy as np
sys.path.insert(0, {repo!r})
from benchmarks.speech_frontend import real_speech
from backend.speech_frontend import load_frontend
seconds = float(sys.argv[1])
clip = real_speech(60.0).astype(np.float32)
audio = np.empty(int(seconds * 16000), np.float32)   # filled in place: no tiled temporary inflates the peak
for start in range(0, audio.size, clip.size):
    piece = audio[start:start + clip.size]
    piece[:] = clip[:piece.size]
del clip
frontend = load_frontend()
frontend.features(audio[:25 * 16000])   # warm-up longer than one chunk: model and arena for a full chunk
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
features = frontend.features(audio)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((peak - before) * 1024 - features.log_posteriors.nbytes - features.hidden.nbytes)
"""


def memory_beyond_output(seconds: float) -> float:
    """MB of peak resident memory that features() on `seconds` of audio adds beyond its output, in a fresh process
    (after a 25 s warm-up run, so the model and onnxruntime's arena for one full chunk are already counted)."""
    result = subprocess.run([sys.executable, "-c", MEMORY_PROBE.format(repo=str(REPO)), str(seconds)],
                            capture_output=True, text=True, check=True)
    return int(result.stdout.split()[-1]) / 1e6


def whisper_encoder(onnx_path: Path):
    """Whisper tiny.en encoder states of 16 kHz audio, 30 s pieces at their real length (one thread)."""
    import onnxruntime
    from backend.bilabial_detector import HOP, MAX_MEL_FRAMES
    from scripts.convert_whisper_encoder import window_mel
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    piece = MAX_MEL_FRAMES * HOP

    def encode(audio: np.ndarray) -> list:
        return [session.run(None, {"mel": window_mel(audio[start:start + piece])[None]})[0]
                for start in range(0, audio.size, piece)]
    return encode


def parity(reference, candidate) -> tuple:
    """(frame-argmax agreement, mean |Δ posterior|, hidden relative error) of two SpeechFeatures of one input."""
    agreement = float(np.mean(reference.log_posteriors.argmax(1) == candidate.log_posteriors.argmax(1)))
    posterior = float(np.mean(np.abs(np.exp(reference.log_posteriors) - np.exp(candidate.log_posteriors))))
    hidden = float(np.linalg.norm(candidate.hidden - reference.hidden) / np.linalg.norm(reference.hidden))
    return agreement, posterior, hidden


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--whisper", type=Path, default=REPO / ".cache" / "whisper_tiny_en_encoder.onnx")
    parser.add_argument("--int8", type=Path, default=REPO / ".cache" / "hama16_asr_int8.onnx")
    args = parser.parse_args(argv)
    audio = real_speech(args.seconds)
    seconds = audio.size / SAMPLE_RATE
    frontend = load_frontend()
    front_wall, front_cpu = timed(lambda: frontend.features(audio), args.repeats)
    print(f"{seconds:.0f} s of real speech, one thread, best of {args.repeats}\n")
    print("| what | wall s | × real time (wall) | CPU s | × real time (CPU) | front end / this (CPU) |")
    print("|---|---|---|---|---|---|")
    print(f"| speech front end (hama 1.6, onnxruntime) | {front_wall:.3f} | {seconds / front_wall:.0f} | {front_cpu:.3f} | "
          f"{seconds / front_cpu:.0f} | 1.00 |")
    if args.whisper.is_file():
        encode = whisper_encoder(args.whisper)
        wall, cpu = timed(lambda: encode(audio), args.repeats)
        print(f"| Whisper tiny.en encoder (candidate, not shipped) | {wall:.3f} | {seconds / wall:.0f} | {cpu:.3f} | "
              f"{seconds / cpu:.0f} | {front_cpu / cpu:.2f} |")
    if args.int8.is_file():
        quantised = SpeechFrontend(args.int8)
        wall, cpu = timed(lambda: quantised.features(audio), args.repeats)
        print(f"| speech front end, int8 (candidate, not shipped) | {wall:.3f} | {seconds / wall:.0f} | {cpu:.3f} | "
              f"{seconds / cpu:.0f} | {front_cpu / cpu:.2f} |")
        agreement, posterior, hidden = parity(frontend.features(audio), quantised.features(audio))
        print(f"\nint8 against the shipped graph: frame argmax agreement {agreement:.4f}, mean |Δ posterior| "
              f"{posterior:.2e}, hidden relative error {hidden:.4f}\n")
    template = np.random.default_rng(0).normal(scale=0.05, size=(5023, 3)).astype(np.float32)
    for info in list_generators():
        generator = load_generator(info.path, threads=1)
        wall, cpu = timed(lambda: generator.animate(audio, SAMPLE_RATE, template), args.repeats)
        print(f"| generator {info.name} (whole inference) | {wall:.3f} | {seconds / wall:.0f} | {cpu:.3f} | "
              f"{seconds / cpu:.0f} | {front_cpu / cpu:.2f} |")
    print(f"\npeak memory added beyond the output: {memory_beyond_output(60.0):.1f} MB for 60 s, "
          f"{memory_beyond_output(600.0):.1f} MB for 600 s (the output itself: {447 * 4 * 30001 / 1e6:.1f} MB "
          "for 600 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
