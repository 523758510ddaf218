"""The one folder for files flowrvs derives and keeps: converted models, sentence embeddings,
text encoders' layers in their compute dtype, the web page's generated examples.

``$FLOWRVS_CACHE`` names it; unset, it is ``$XDG_CACHE_HOME/flowrvs`` (``~/.cache/flowrvs``).
``FLOWRVS_CACHE`` set to ``0``, ``off``, ``none``, ``false`` or ``no`` turns off the caches that
only save time (:func:`speed_caches_enabled`: sentence embeddings stay in memory, text encoders
stream from their own files); what must live somewhere (a converted model) then goes to the
default folder.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "FLOWRVS_CACHE"
OFF_VALUES = ("0", "off", "none", "false", "no")


def _setting() -> str:
    return os.environ.get(CACHE_ENV, "").strip()


def speed_caches_enabled() -> bool:
    """False when ``$FLOWRVS_CACHE`` is one of :data:`OFF_VALUES` (case-insensitive)."""
    return _setting().lower() not in OFF_VALUES


def cache_root() -> Path:
    """``$FLOWRVS_CACHE`` (``~`` expanded), else ``$XDG_CACHE_HOME/flowrvs``, else ``~/.cache/flowrvs``."""
    value = _setting()
    if value and value.lower() not in OFF_VALUES:
        return Path(value).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "flowrvs"
