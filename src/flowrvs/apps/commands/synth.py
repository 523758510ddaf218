"""``flowrvs synth``: write a procedural referring-video split in the MeViS layout."""

from __future__ import annotations

import argparse

from flowrvs.data.synth.generate import DEFAULT_FRAMES, DEFAULT_SIZE, parse_mix, parse_size
from flowrvs.data.synth.vocabulary import EXPRESSION_MIX
from flowrvs.data.synth.writer import DEFAULT_SEED, DEFAULT_SPLIT, DEFAULT_VIDEOS, write_split


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="generate a synthetic referring-video dataset split (MeViS layout)",
        description=(
            "Write OUT_DIR/<split>/{JPEGImages/, meta_expressions.json, mask_dict.json}: videos of "
            "moving coloured shapes on panning textured backgrounds, each with 2-6 unambiguous "
            "referring sentences. The split folder is replaced atomically; other splits in OUT_DIR "
            "are left alone. Same arguments, same bytes."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", help="dataset root (created if missing)")
    parser.add_argument("--videos", type=int, default=DEFAULT_VIDEOS, help="number of videos")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help="frames per video (>= 1)")
    parser.add_argument(
        "--size", default="{}x{}".format(*DEFAULT_SIZE), help="frame size HxW (each >= 16; multiples of 16 suit the model)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (>= 0); video i uses (seed, i)")
    parser.add_argument("--split-name", default=DEFAULT_SPLIT, help="split folder name, e.g. train or valid_u")
    parser.add_argument(
        "--mix",
        default=",".join(f"{k}={v:g}" for k, v in EXPRESSION_MIX.items()),
        help="fractions of appearance/motion/relation/multi-object expressions (normalised)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    size = parse_size(args.size)
    mix = parse_mix(args.mix)
    folder = write_split(
        args.out_dir,
        args.split_name,
        args.videos,
        frames=args.frames,
        size=size,
        seed=args.seed,
        mix=mix,
        progress=False if args.quiet else None,
    )
    if not args.quiet:
        print(f"wrote {args.videos} videos ({args.frames} frames of {size[0]}x{size[1]}) to {folder}")
    return 0
