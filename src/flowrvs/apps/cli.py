"""`flowrvs` command line: one sub-command per module in :mod:`flowrvs.apps.commands`.

Each command module has ``register(subparsers)`` that adds its parser and sets
``func`` to a callable taking the parsed arguments; it imports torch and the model libraries
inside that callable, so building the parser (``flowrvs --help``) stays quick. User mistakes surface as
:class:`~flowrvs.errors.FlowRVSError` and end in a one-line message and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from flowrvs.errors import FlowRVSError
from flowrvs.runtime.memory import keep_freed_memory

COMMANDS = ["segment", "segment-batch", "web", "convert", "synth", "cache", "train", "export", "demo", "evaluate", "score"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowrvs", description="Referring video object segmentation by flow matching.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        # A listed command whose module is missing or broken is a bug of the package: fail loudly,
        # never drop the command from the help. Modules import heavy libraries inside ``run``.
        module = importlib.import_module(f"flowrvs.apps.commands.{name.replace('-', '_')}")
        module.register(sub)
    return parser


def _quiet_libraries() -> None:
    """Our own progress bars tell the story; silence the loaders' per-file bars and notices.

    Through the environment variables the libraries read when imported, so that commands that
    never load a model do not pay for importing them (seconds); a user's own setting wins.
    """
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "diffusers" in sys.modules:  # imported already (``main`` called in-process): set it directly
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.set_verbosity_error()
        diffusers_logging.disable_progress_bar()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()


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


def run() -> int:
    """The ``flowrvs`` program: :func:`main` in a process of its own, whose allocator it may set.

    Freed activations are kept for reuse instead of being faulted in again
    (:func:`flowrvs.runtime.memory.keep_freed_memory`, process-wide); ``main`` called in-process
    leaves the caller's allocator alone.
    """
    keep_freed_memory()
    return main()


if __name__ == "__main__":
    sys.exit(run())
