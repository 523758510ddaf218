"""`flowrvs segment-batch VIDEOS --sentences FILE --model M --out OUT`: a folder of videos.

Each video named in FILE (JSON ``{"video": ["sentence", ...]}`` or CSV ``video,sentence``) is
segmented with all its sentences into ``OUT/<video>/`` (the layout of ``flowrvs segment``);
``OUT/summary.json`` lists frames, sentences, seconds and status per video. Started again with
the same OUT it skips finished videos. A video that fails is reported and the batch goes on;
the exit status is then 2. Under ``torchrun --nproc_per_node N`` the videos are shared out.
See :mod:`flowrvs.apps.batch`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flowrvs.apps.commands.common import add_model_args, add_segment_options, segment_options


DESCRIPTION = (
    "Segment each video named in the sentence file (JSON {\"video\": [\"sentence\", ...]} or a CSV with the "
    "columns video,sentence) with all its sentences into OUT/<video>/ (the layout of flowrvs segment), and "
    "list frames, sentences, seconds and status per video in OUT/summary.json. Run again with the same OUT, "
    "finished videos are skipped. A video that fails is reported and the batch goes on; the exit status is "
    "then 2. Under torchrun --nproc_per_node N the videos are shared out among the processes."
)


def register(sub) -> None:
    parser = sub.add_parser("segment-batch", help="segment every video of a folder with its own sentences",
                            description=DESCRIPTION)
    parser.add_argument("videos", type=Path, help="folder of videos (files, or folders of frames)")
    parser.add_argument("--sentences", required=True, type=Path,
                        help='JSON {"video name": ["sentence", ...]} or CSV with columns video,sentence')
    parser.add_argument("--out", required=True, type=Path, help="output folder (reused on a rerun: finished videos are kept)")
    parser.add_argument("--no-overlay", action="store_true", help="skip each video's overlay.mp4")
    add_segment_options(parser)
    add_model_args(parser, steps=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from flowrvs.apps.batch import segment_batch
    from flowrvs.apps.commands.common import hub_options, init_distributed, load_pipeline
    from flowrvs.loading.model_folder import model_fingerprint
    from flowrvs.loading.resolve import resolve_model_dir
    from flowrvs.runtime import distributed

    options = segment_options(args)  # validated once, before the model is looked for
    model_dir = resolve_model_dir(args.model, **hub_options(args))  # a bad model fails before any work
    process = distributed.from_environment()
    prefix = f"[rank {process.rank}/{process.world_size}] " if process.distributed else ""

    def log(msg: str) -> None:
        print(f"flowrvs segment-batch: {prefix}{msg}", file=sys.stderr, flush=True)

    record = {"model": str(model_dir.resolve()), "model_files": model_fingerprint(model_dir),
              "steps": options.num_inference_steps, "size": list(options.size) if options.size else None,
              "mask_threshold": options.mask_threshold, "window": options.window, "overlap": options.overlap,
              "overlay": not args.no_overlay}
    if process.distributed:
        init_distributed(process, args)
    try:
        stats, summary = segment_batch(
            lambda: load_pipeline(args), args.videos, args.sentences, args.out, process=process, run_record=record,
            log=log, options=options, overlay=not args.no_overlay)
    finally:
        if process.distributed:
            distributed.teardown()
    log(f"segmented {len(stats.done)} video(s) in {stats.seconds:.1f} s"
        + (f"; {len(stats.skipped)} already done" if stats.skipped else "")
        + (f"; {len(stats.failed)} failed" if stats.failed else ""))
    if summary is None:  # rank 0 reports the whole batch, failures of every rank included
        return 0
    failed = summary["failed"]
    if failed:
        shown = ", ".join(failed[:5]) + (" ..." if len(failed) > 5 else "")
        print(f"flowrvs segment-batch: {len(failed)} of {summary['total']} video(s) failed ({shown}); "
              f"see {args.out / 'summary.json'}", file=sys.stderr)
        return 2
    print(f"segmented {summary['total']} video(s) into {args.out} (summary.json)")
    return 0
