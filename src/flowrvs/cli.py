"""`flowrvs` command line: one sub-command per module in :mod:`flowrvs.commands`.

Each command module has ``register(subparsers)`` that adds its parser and sets
``func`` to a callable taking the parsed arguments. User mistakes surface as
:class:`~flowrvs.errors.FlowRVSError` and end in a one-line message and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import FlowRVSError

COMMANDS = ["segment", "convert", "synth", "train", "export", "demo", "evaluate", "score"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowrvs", description="Referring video object segmentation by flow matching.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"flowrvs.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"flowrvs.commands.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def _quiet_libraries() -> None:
    """Our own progress bars tell the story; silence the loaders' per-file bars and notices."""
    try:
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging
    except ImportError:
        return
    for logging in (diffusers_logging, transformers_logging):
        logging.set_verbosity_error()
        logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_libraries()
    try:
        result = args.func(args)
    except FlowRVSError as err:
        print(f"flowrvs {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"flowrvs {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
