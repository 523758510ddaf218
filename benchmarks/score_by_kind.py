"""J&F of an evaluation grouped by the kind of sentence, for a split made by ``flowrvs synth``.

    python benchmarks/score_by_kind.py --root DATA --split valid_u --seed 1 --eval OUT

``OUT`` is the folder ``flowrvs evaluate`` wrote (its ``metrics.csv``). The generator's own kind
of each expression (appearance, motion, relation, multi) is recovered by generating the split's
videos again from ``--seed`` at their on-disk size and frame count; every sentence is checked
against the split's ``meta_expressions.json``, so a wrong seed fails instead of mislabelling.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

from flowrvs.synth import EXPRESSION_KINDS, generate_video, video_rng


def kinds_of_split(root: Path, split: str, seed: int) -> dict[tuple[str, str], str]:
    """``{(video, exp_id): kind}`` of a synthetic split, checked against its sentences."""
    from flowrvs.data.mevis import MeViSDataset

    dataset = MeViSDataset(root, split)
    out = {}
    for video in dataset.videos():
        index = int(video.rsplit("_", 1)[1])
        frames = dataset.load_frames(video, [0])
        synth = generate_video(video_rng(seed, index), len(dataset.frame_names(video)), tuple(frames.shape[1:3]))
        for expression in dataset.expressions(video):
            sentence, _ = synth.expressions[int(expression.exp_id)]
            if sentence != expression.sentence:
                sys.exit(f"error: {video} expression {expression.exp_id} is {expression.sentence!r}, seed {seed} gives {sentence!r}")
            out[(video, expression.exp_id)] = synth.kinds[int(expression.exp_id)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="dataset root written by flowrvs synth")
    parser.add_argument("--split", default="valid_u")
    parser.add_argument("--seed", type=int, required=True, help="the --seed the split was made with")
    parser.add_argument("--eval", type=Path, required=True, help="output folder of flowrvs evaluate")
    args = parser.parse_args()
    metrics = args.eval / "metrics.csv"
    if not metrics.is_file():
        sys.exit(f"error: {metrics} not found; run flowrvs evaluate first")
    kinds = kinds_of_split(args.root, args.split, args.seed)
    scores = defaultdict(list)
    with metrics.open() as f:
        for row in csv.DictReader(f):
            scores[kinds[(row["video"], row["exp_id"])]].append(float(row["J&F"]))
    for kind in EXPRESSION_KINDS:
        if scores[kind]:
            print(f"{kind:<11} {len(scores[kind]):>4} expressions  J&F {sum(scores[kind]) / len(scores[kind]):.3f}")


if __name__ == "__main__":
    main()
