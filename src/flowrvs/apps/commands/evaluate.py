"""`flowrvs evaluate --dataset mevis|ytvos|davis|long-rvos|revos --root DIR --split S --model M --out OUT`.

Runs the model over a split (one streamed segmentation per video, options from
:func:`~flowrvs.apps.commands.common.add_segment_options`), writes the predictions in the layout
of the dataset's official scorer/server (and ``OUT/submission.zip`` for MeViS and
Ref-YouTube-VOS), scores a split that has masks into ``OUT/metrics.json`` (the format of
``flowrvs score``) and prints its summary line. ``--window`` defaults to the plan the
method's published numbers come from for mevis/ytvos/davis (FlowRVS: whole videos; REM: its
clips) and to the method's own plan for long-rvos/revos (FlowRVS: 17-frame windows, overlap 4).
Resumable: run it again with the same ``--out`` and finished expressions are skipped. Under
``torchrun --nproc_per_node N`` the videos are shared out among the processes. Layouts: see
:mod:`flowrvs.eval.layouts`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flowrvs.apps.commands.common import add_model_args, add_segment_options

WINDOW_HELP = ("frames per window, 4k+1; 0 = the whole video in one pass (default for mevis, ytvos and davis: "
               "the plan the method's published numbers come from, whole videos for FlowRVS, its clips for REM; "
               "for long-rvos and revos the method's own plan, 17 with --overlap 4 for FlowRVS)")


def register(subparsers) -> None:
    from flowrvs.data import BENCHMARKS, DEFAULT_SPLITS

    p = subparsers.add_parser(
        "evaluate",
        help="run a model over a benchmark split, write predictions/submission zip, score",
        description=(
            "Segment every expression of a split, write 0/255 PNGs named after the dataset's frames "
            "(MeViS: OUT/predictions/<video>/<exp_id>/; Ref-YouTube-VOS: OUT/predictions/Annotations/"
            "<video>/<exp_id>/; Ref-DAVIS17: OUT/predictions/anno_<set>/<video>/<exp_id>/ as indexed PNGs, "
            "plus OUT/official/anno_<set>/<video>/ for the DAVIS toolkit; Long-RVOS: OUT/predictions/<video>/"
            "<exp_id>/; ReVOS: the same as 0/1 PNGs), OUT/submission.zip for the MeViS and Ref-YouTube-VOS "
            "servers, and for a split with masks OUT/metrics.json. Whole videos for mevis/ytvos/davis by "
            "default (the published numbers come from it), 17-frame windows for long-rvos/revos. "
            "Resumable; works under torchrun."
        ),
    )
    p.add_argument("--dataset", required=True, choices=BENCHMARKS, help="benchmark")
    p.add_argument("--root", required=True, type=Path, help="dataset root (never written to)")
    p.add_argument("--split", default=None,
                   help="split (default: " + ", ".join(f"{k} {v}" for k, v in DEFAULT_SPLITS.items()) + ")")
    p.add_argument("--out", required=True, type=Path, help="output folder (reused on a rerun: finished work is kept)")
    p.add_argument("--limit", type=int, default=None, help="only the first K videos (sorted)")
    add_segment_options(p)
    p._option_string_actions["--window"].help = WINDOW_HELP  # evaluate's default differs from segment's
    p._option_string_actions["--batch-size"].help = "expressions per DiT pass"
    add_model_args(p, steps=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from flowrvs.apps.commands.common import hub_options, init_distributed, load_pipeline, segment_options
    from flowrvs.eval.benchmark import summary_line
    from flowrvs.eval.evaluate import WINDOWED, evaluate
    from flowrvs.loading.model_folder import model_fingerprint
    from flowrvs.loading.resolve import resolve_model_dir
    from flowrvs.runtime import distributed

    from flowrvs.pipelines.loader import pipeline_class_of

    model_dir = resolve_model_dir(args.model, **hub_options(args))  # fails fast on a bad model before any work
    if args.window is None and args.dataset not in WINDOWED:
        args.window = pipeline_class_of(model_dir).benchmark_window  # the plan of the published numbers
    options = segment_options(args)  # validated once, before any work
    process = distributed.from_environment()
    prefix = f"[rank {process.rank}/{process.world_size}] " if process.distributed else ""

    def log(msg: str) -> None:
        print(f"flowrvs evaluate: {prefix}{msg}", file=sys.stderr, flush=True)

    if process.distributed:
        init_distributed(process, args)
    try:
        result = evaluate(
            lambda: load_pipeline(args),
            args.dataset,
            args.root,
            args.split,
            args.out,
            model_id=str(model_dir.resolve()),
            model_files=model_fingerprint(model_dir),
            options=options,
            limit=args.limit,
            process=process,
            log=log,
        )
    finally:
        if process.distributed:
            distributed.teardown()
    stats = result.stats
    log(f"segmented {stats.expressions} expression(s) of {stats.videos} video(s) in {stats.seconds:.1f} s"
        + (f"; {stats.skipped_expressions} already done" if stats.skipped_expressions else ""))
    if not process.main:
        return 0
    if result.zip_path is not None:
        partial = " (partial: --limit)" if args.limit is not None else ""
        log(f"wrote {result.zip_path}{partial}")
    if result.metrics is None:
        log(f"split {result.split} has no masks: skipped scoring; "
            + (f"submit {result.zip_path} to the server" if result.zip_path else "predictions are in "
               f"{args.out / 'predictions'}"))
        return 0
    print(summary_line(result.metrics))
    log(f"wrote {args.out / 'metrics.json'} ({result.metrics['num_expressions']} expressions)")
    return 0
