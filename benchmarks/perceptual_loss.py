"""Cost of the perceptual loss: one generator training step with and without it (same run).

The generator is a SYNTHETIC stand-in of FaceFormer's shape (no pretrained audio encoder is available
here): per-frame audio features (T, 128) -> 2-layer transformer (width 256) -> Linear(256 -> 15069)
offsets + template, trained with MSE against target vertices; "with" adds `PerceptualLoss` (frozen
speech-mesh encoders of the chosen preset, random weights: cost does not depend on the weights; the preset's speech
side, by default the front end's (N, 5, 447) windows, and its centred mesh encoder) at the FaceFormer weight 1e-7,
the speech target computed once per clip as the loss's API intends (so, as in training, it is not in the step).

Each variant runs in a fresh subprocess so its peak memory is its own: CPU peak = growth of the
process's max RSS over the steps; GPU peak = torch.cuda.max_memory_allocated.

    .venv/bin/python benchmarks/perceptual_loss.py [--preset small] [--frames 150] [--steps 20] [--device cpu] [--repeats 3]
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def one_variant(args) -> dict:
    import torch
    from torch import nn

    from training.loop import optimiser_step
    from training.representation.config import preset
    from training.representation.losses import PerceptualLoss
    from training.representation.model import MeshEncoder, build_speech_encoder

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    width = 256
    generator = nn.ModuleDict({
        "audio": nn.Linear(128, width),
        "body": nn.TransformerEncoder(nn.TransformerEncoderLayer(width, 4, 4 * width, batch_first=True), 2),
        "out": nn.Linear(width, 15069)}).to(device)
    template = torch.randn(15069, device=device) * 0.05
    audio = torch.randn(1, args.frames, 128, device=device)
    target = template + 0.001 * torch.randn(args.frames, 15069, device=device)
    optimiser = torch.optim.Adam(generator.parameters(), lr=1e-4)
    perceptual = None
    if args.variant == "with":
        model = preset(args.preset).model
        mesh_encoder = MeshEncoder(model)
        mesh_encoder.standardise.std.fill_(0.01)
        speech_encoder = build_speech_encoder(model)
        perceptual = PerceptualLoss(speech_encoder, mesh_encoder, weight=1e-7).to(device)
        speech_target = perceptual.speech_target(torch.randn(args.frames - 4, *speech_encoder.input_shape,
                                                             device=device))

    parameters = list(generator.parameters())

    def loss(index):
        hidden = generator["body"](generator["audio"](audio))[0]
        vertices = template + generator["out"](hidden)
        total = nn.functional.mse_loss(vertices, target)
        if perceptual is not None:
            total = total + perceptual(vertices, speech_target)
        return {"loss": total}

    def step():  # the training loop's own step; no clipping (an infinite norm bound), as before
        optimiser_step(optimiser, parameters, 1, loss, grad_clip=float("inf"))

    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2 ** 20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": args.variant, "seconds_per_step": (time.perf_counter() - started) / args.steps,
            "peak_mb": peak, "peak_growth_mb": peak - rss_before if device.type == "cpu" else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--frames", type=int, default=150, help="clip length in frames (default 150 = 5 s)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each variant, alternating (median reported)")
    parser.add_argument("--variant", choices=("with", "without"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(one_variant(args)))
        return 0
    runs = {"without": [], "with": []}
    for _ in range(args.repeats):   # alternating, so a change in the machine's load hits both variants alike
        for variant in ("without", "with"):
            command = [sys.executable, __file__, "--variant", variant] + [
                f"--{key}={getattr(args, key)}" for key in ("preset", "frames", "steps", "device", "threads")]
            output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            runs[variant].append(json.loads(output.strip().splitlines()[-1]))
    results = {variant: sorted(values, key=lambda result: result["seconds_per_step"])[len(values) // 2]
               for variant, values in runs.items()}   # the median run of each variant
    base, extra = results["without"], results["with"]
    from training.representation.config import preset
    print(f"device {args.device}, representation preset {args.preset} (speech side "
          f"{preset(args.preset).model.speech_input}), clip {args.frames} frames, "
          f"{args.steps} steps, {args.threads} thread(s), median of {args.repeats} alternating runs each")
    print("| variant | s/step | peak MB | peak growth during steps MB (CPU) |")
    print("|---|---|---|---|")
    for variant in ("without", "with"):
        result = results[variant]
        growth = "-" if result["peak_growth_mb"] is None else f"{result['peak_growth_mb']:.0f}"
        print(f"| {variant} perceptual loss | {result['seconds_per_step']:.4f} | {result['peak_mb']:.0f} | {growth} |")
    print(f"time ratio {extra['seconds_per_step'] / base['seconds_per_step']:.3f} "
          f"(+{100 * (extra['seconds_per_step'] / base['seconds_per_step'] - 1):.1f}%), "
          f"peak memory ratio {extra['peak_mb'] / base['peak_mb']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
