"""`flowrvs score`: J, F and J&F of saved mask PNGs against a split's ground truth."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flowrvs.errors import FlowRVSError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "score",
        help="score saved mask predictions (J, F, J&F)",
        description=(
            "Score predictions laid out as PRED_DIR/<video>/<exp_id>/<frame>.png (nonzero = foreground, "
            "same size as the ground truth) against every expression of a split that has masks. "
            "Writes metrics.json and metrics.csv (per expression, keyed <video>_<exp_id>; Ref-DAVIS17: "
            "per annotator set and object, keyed <video>_<object>) and prints 'J&F ..  J ..  F ..' (Long-RVOS "
            "and ReVOS: of their 'overall' group, with tIoU/vIoU or A/R; N-acc/T-acc when the split has "
            "no-target expressions)."
        ),
    )
    p.add_argument("pred_dir", metavar="PRED_DIR", type=Path, help="folder of <video>/<exp_id>/<frame>.png")
    p.add_argument("--dataset", default="mevis",
                   help="mevis (PRED_DIR/<video>/<exp_id>/), ytvos (PRED_DIR[/Annotations]/<video>/<exp_id>/, "
                        "train split) or davis (the DAVIS-2017 toolkit's unsupervised task per annotator set, "
                        "sets averaged: PRED_DIR/anno_<set>/<video>/<frame>.png with object ids as pixel values, "
                        "or PRED_DIR/anno_<set>/<video>/<exp_id>/), long-rvos or revos (PRED_DIR/<video>/<exp_id>/, "
                        "0/255 or 0/1: nonzero = foreground); default mevis")
    p.add_argument("--root", required=True, type=Path, help="dataset root (for MeViS: holding <split>/)")
    p.add_argument("--split", default=None, help="split with masks to score against (default: mevis valid_u, "
                                                  "ytvos train, davis, long-rvos and revos valid)")
    p.add_argument("--out", type=Path, default=None, help="folder for metrics.json/metrics.csv (default PRED_DIR)")
    p.add_argument("--allow-missing", action="store_true",
                   help="score missing prediction frames as empty instead of failing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from flowrvs.data import DEFAULT_SPLITS, open_dataset
    from flowrvs.eval.benchmark import SCORERS, score_dataset, summary_line, write_metrics

    if not args.pred_dir.is_dir():
        raise FlowRVSError(f"prediction folder {args.pred_dir} does not exist")
    name = args.dataset.lower()
    if name not in SCORERS:
        raise FlowRVSError(f"cannot score dataset {args.dataset!r}; supported: {', '.join(SCORERS)}")
    split = args.split or ("train" if name == "ytvos" else DEFAULT_SPLITS[name])
    dataset = open_dataset(name, args.root, split)
    metrics = score_dataset(name, dataset, args.pred_dir, allow_missing=args.allow_missing)
    if metrics.get("missing_frames"):
        print(f"flowrvs score: warning: {metrics['missing_frames']} missing prediction frames scored as empty",
              file=sys.stderr)
    out = args.out if args.out is not None else args.pred_dir
    json_path, csv_path = write_metrics(metrics, out)
    print(summary_line(metrics))
    print(f"wrote {json_path} and {csv_path}", file=sys.stderr)
    return 0
