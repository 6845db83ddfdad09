"""`python -m backend animate --audio A --template T --model M --out seq.npy [--style S]`: run a generator.

Writes the (T, 5023, 3) float32 vertex sequence at 30 fps (T = backend.generators.frame_count of the audio), in
the template's own units and orientation (recovered from the mesh: backend.flame_frame.FlameFrame.recover).
--model is a generator folder or the name of one under --models-dir (default: the shipped generators; without
--model, backend.generators.DEFAULT_GENERATOR);
--template is a FLAME mesh (.ply/.obj; default $FLAME_TEMPLATE). `--list` prints the available generators.
"""

import argparse
import sys
from pathlib import Path

from backend.atomic import check_writable
from backend.audio import load_audio
from backend.cli import positive_int
from backend.flame import find_template_path
from backend.flame_frame import FlameFrame
from backend.frame_rate import MESH_FPS
from backend.generators import DEFAULT_GENERATOR, load_generator, scan_generators
from backend.mesh import load_flame_mesh, save_vertex_blocks


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "animate", help="animate a FLAME template from speech with a generator",
        description=__doc__.split("\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio", type=Path, help="speech (.wav, .flac, .ogg, .opus)")
    parser.add_argument("--template", type=Path, help="FLAME template mesh (.ply/.obj; default $FLAME_TEMPLATE)")
    parser.add_argument("--model", default=DEFAULT_GENERATOR,
                        help=f"generator folder or name (see --list; default {DEFAULT_GENERATOR})")
    parser.add_argument("--models-dir", type=Path, help="folder of generator folders (default: shipped models)")
    parser.add_argument("--style", help="subject style (default: the generator's default style)")
    parser.add_argument("--out", type=Path, help="output .npy vertex sequence (T, 5023, 3) at 30 fps")
    parser.add_argument("--threads", type=positive_int, default=1, help="onnxruntime threads (default 1)")
    parser.add_argument("--no-lip-closure", action="store_true",
                        help="leave the graph's lips as they are where the speech front end heard /p b m/ "
                             "(default: the lip closure guard shuts them; backend/closure_guard.py)")
    parser.add_argument("--list", action="store_true", help="list the available generators and exit")
    parser.set_defaults(run=run, parser=parser)


def run(args) -> int:
    if args.list:
        infos, broken = scan_generators(args.models_dir)
        for info in infos:
            default = " (default)" if info.name == DEFAULT_GENERATOR else ""
            print(f"{info.name}{default}\t{info.family}\tstyles: {', '.join(info.styles)}\t{info.description}")
        for name, reason in broken:
            print(f"{name}\tBROKEN\t{reason}")
        return 0
    missing = [f"--{name}" for name in ("audio", "out") if getattr(args, name) is None]
    if missing:
        args.parser.error(f"missing {', '.join(missing)} (or use --list)")
    check_writable(args.out)   # refuse a bad target before the work, not after
    generator = load_generator(args.model, args.models_dir, threads=args.threads)
    template = load_flame_mesh(find_template_path(args.template)).vertices
    frame = FlameFrame.recover(template)   # a head in cm, rotated or mirrored moves like one in FLAME metres
    for note in frame.notes:
        print(f"warning: {args.template or 'the template'}: {note}", file=sys.stderr)
    samples, rate = load_audio(args.audio)
    blocks = generator.animate_blocks(samples, rate, frame.to_flame(template), style=args.style,
                                      lip_closure=not args.no_lip_closure)
    frames = next(blocks)   # streamed to the file block by block: a long take is never held whole
    save_vertex_blocks(args.out, frames, (frame.to_local(block) for _, block in blocks))
    print(f"{args.out}: {frames} frames at {MESH_FPS} fps ({frames / MESH_FPS:.2f} s) "
          f"from generator '{generator.info.name}', style '{args.style or generator.info.default_style}'")
    return 0
