"""Run records: the settings of a run, written once into its output folder and checked on resume.

A command that can be started again into the same folder (``evaluate``, ``segment-batch``) writes
a JSON record of what produces its outputs (model, its files' fingerprint, settings) the first
time; a later run into that folder must match it, so outputs of two different runs never mix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from flowrvs.errors import FlowRVSError
from flowrvs.io.atomic import write_json
from flowrvs.runtime.distributed import Process


def read_record(path: Path) -> dict | None:
    """The JSON object at ``path`` (a run record, a status record), or None when there is none
    (missing, not JSON, not an object): a record a killed run left half-made counts as absent."""
    try:
        old = json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return old if isinstance(old, dict) else None


def check_run_record(out: Path, name: str, record: dict, process: Process, *,
                     keys: Iterable[str] | None = None, outputs: str = "outputs") -> None:
    """Refuse to mix outputs of different runs in one folder; the main process writes the record.

    ``out``: the output folder; ``name``: the record file's path under it (e.g. ``evaluate.json``,
    ``.status/run.json``); ``record``: this run's settings
    (JSON-able). With a readable earlier record, the ``keys`` of both (default: every key of
    ``record``) must be equal, else FlowRVSError names the differences, e.g. ``"OUT holds
    predictions made with other settings (steps 4 there, 8 now); use another --out"`` (``outputs``
    = ``"predictions"``). Without one, the main process writes ``record`` (atomically).
    """
    path = Path(out) / name
    old = read_record(path)
    if old is None:
        if process.main:
            write_json(path, record, indent=2)
        return
    diff = [k for k in (record if keys is None else keys) if old.get(k) != record.get(k)]
    if diff:
        what = "; ".join(f"{k} {old.get(k)!r} there, {record.get(k)!r} now" for k in diff)
        raise FlowRVSError(f"{out} holds {outputs} of another run made with other settings "
                           f"({what}); use another --out")

