"""`flowrvs train CONFIG.yaml [key=value ...] [--resume]`: run one training stage.

The YAML config names every knob (see :class:`flowrvs.training.config.TrainConfig`); dotted
``key=value`` pairs override it (values are YAML: ``optim.steps=200 data.size=[64,112]``).
Writes ``output_dir/{config.yaml, train.log, checkpoints/step-*.safetensors, model/}``.
Stages chain through ``model.init``: autoencoder (small random models only) -> mask_decoder -> flow.
Many processes: ``torchrun --nproc_per_node N -m flowrvs train CONFIG.yaml`` (``optim.batch_size``
is the global batch; ``dist.strategy=fsdp`` shards the DiT).
"""

from __future__ import annotations

import os


def register(sub) -> None:
    parser = sub.add_parser(
        "train",
        help="train a stage (autoencoder | mask_decoder | flow) from a YAML config",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument("config", help="YAML config file (e.g. configs/tiny-synthetic.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. optim.steps=200")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output_dir")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.set_defaults(func=run)


def run(args) -> int:
    from flowrvs.training.config import dump_config, load_config
    from flowrvs.training.trainer import train

    config = load_config(args.config, args.overrides, resume=True if args.resume else None)
    if args.print_config:
        print(dump_config(config), end="")
        return 0
    result = train(config)
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 speaks for the run
        return 0
    last = f"last loss {result.losses[max(result.losses)]:.4g}; " if result.losses else ""
    print(
        f"stage {result.stage}: ran {len(result.losses)} step(s) to step {result.step} in {result.seconds:.1f} s, "
        f"{last}model written to {result.model_dir}"
    )
    return 0
