"""`flowrvs export RUN_DIR|CHECKPOINT --out MODEL_DIR [--step N] [--no-ema] [--release]`: a model folder from a checkpoint.

A training run writes its model folder only at the end; this turns any of its checkpoints
(``RUN_DIR/checkpoints/step-*.safetensors``) into one, for example to score a run while
it is still training. The run's ``model.init`` folder must still exist. ``--release`` writes
instead the flow stage's DiT as the public FlowRVS release does (a ``.pth`` of ``model`` and
``ema_model``, diffusers' EMAModel state), which ``flowrvs convert --dit`` reads.
"""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    parser = sub.add_parser("export", help="write a model folder from a training checkpoint", description=__doc__)
    parser.add_argument("source", help="a training output_dir (its checkpoints/) or one checkpoint file")
    parser.add_argument("--out", required=True, help="model folder to write")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step in RUN_DIR (default: the last)")
    parser.add_argument("--no-ema", action="store_true", help="export the raw weights, not their EMA")
    parser.add_argument("--release", action="store_true",
                        help="write OUT as a public-release DiT .pth (model + ema_model) for flowrvs convert")
    parser.set_defaults(func=run)


def run(args) -> int:
    from flowrvs.errors import FlowRVSError
    from flowrvs.training.checkpoint import export_checkpoint, list_checkpoints

    source = Path(args.source)
    if source.is_dir():
        found = dict(list_checkpoints(source))
        if not found:
            raise FlowRVSError(f"{source} holds no training checkpoints (expected {source}/checkpoints/step-*.safetensors)")
        step = max(found) if args.step is None else args.step
        if step not in found:
            raise FlowRVSError(f"{source} has no checkpoint of step {step}; it has steps {', '.join(map(str, sorted(found)))}")
        source = found[step]
    elif args.step is not None:
        raise FlowRVSError("--step picks a checkpoint of a run folder; it cannot be used with a checkpoint file")
    if args.release:
        import torch

        from flowrvs.io.atomic import atomic_path
        from flowrvs.training.checkpoint import release_checkpoint

        state = release_checkpoint(source)
        if args.no_ema:
            state.pop("ema_model", None)
        with atomic_path(Path(args.out)) as tmp:
            torch.save(state, tmp)
        print(f"wrote release file {args.out} from {source}")
        return 0
    out = export_checkpoint(source, args.out, use_ema=not args.no_ema)
    print(f"wrote model folder {out} from {source}{' (raw weights)' if args.no_ema else ''}")
    return 0
