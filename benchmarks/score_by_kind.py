"""J&F of an evaluation grouped by the kind of sentence, for a split made by ``flowrvs synth``.

    python benchmarks/score_by_kind.py --root DATA --split valid_u --seed 1 --eval OUT

``OUT`` is the folder ``flowrvs evaluate`` wrote (its ``metrics.csv``). Besides the mean J&F,
each kind gets its share of *missed* expressions (J < 0.1: the mask lies on another object
or on nothing), which tells grounding failures from rough masks. The generator's own kind
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

from flowrvs.data.synth.vocabulary import EXPRESSION_KINDS
from flowrvs.data.synth.generate import generate_video, video_rng


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


MISSED_J = 0.1


def summarize(rows: list[dict], kinds: dict[tuple[str, str], str]) -> dict[str, tuple[int, float, float, float | None]]:
    """``{kind: (expressions, mean J&F, share with J < MISSED_J, mean J&F of the others)}`` of
    ``metrics.csv`` rows, plus ``all`` (the last is None when every expression was missed)."""
    groups = defaultdict(list)
    for row in rows:
        groups[kinds[(row["video"], row["exp_id"])]].append(row)
        groups["all"].append(row)
    out = {}
    for kind in (*EXPRESSION_KINDS, "all"):
        if g := groups[kind]:
            hits = [float(r["J&F"]) for r in g if float(r["J"]) >= MISSED_J]
            out[kind] = (len(g), sum(float(r["J&F"]) for r in g) / len(g), 1 - len(hits) / len(g),
                         sum(hits) / len(hits) if hits else None)
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
    with metrics.open() as f:
        rows = list(csv.DictReader(f))
    for kind, (count, score, missed, rest) in summarize(rows, kinds).items():
        rest = "-" if rest is None else f"{rest:.3f}"
        print(f"{kind:<11} {count:>4} expressions  J&F {score:.3f}  missed (J < {MISSED_J}) {missed:5.1%}  J&F of the rest {rest}")


if __name__ == "__main__":
    main()
