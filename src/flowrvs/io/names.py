"""Names read from files (dataset ids, frame names, sentence-file keys) checked before they become paths.

A name from a file is data, not a path: ``../../escaped`` or ``/etc/x`` as an expression id would
otherwise make a writer put files outside its output folder. :func:`check_name` accepts exactly
one path component: not empty, not ``.`` or ``..``, no ``/`` or ``\\``, no NUL, not absolute, no
drive letter, at most :data:`MAX_NAME_BYTES` bytes.
"""

from __future__ import annotations

from pathlib import Path

from flowrvs.errors import FlowRVSError

_FORBIDDEN = ("/", "\\", "\x00")
#: File systems take components of up to 255 bytes; a writer adds up to 32 (``.<name>.<random>.tmp``,
#: ``<name>.json``), so a longer name could not be written and is refused when read.
MAX_NAME_BYTES = 223


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a single safe path component, or None when it is one."""
    if not isinstance(name, str):
        return f"is a {type(name).__name__}, not a string"
    if name in ("", ".", ".."):
        return "is empty" if not name else "is a relative folder"
    for char in _FORBIDDEN:
        if char in name:
            return "holds a NUL byte" if char == "\x00" else f"holds the separator {char!r}"
    if len(name) >= 2 and name[1] == ":":
        return "starts with a drive letter"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"is longer than {MAX_NAME_BYTES} bytes"
    return None


def check_name(name: str, source: str | Path, what: str = "name") -> str:
    """``name`` unchanged when it is one safe path component, else FlowRVSError naming ``source``.

    source: the file the name was read from; what: what the name is ("expression id", ...).
    """
    problem = name_problem(name)
    if problem is not None:
        shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:77] + "..."
        raise FlowRVSError(f"{source}: bad {what} {shown}: {problem} (a name must be one path component)")
    return name


def check_relative_path(path: str, source: str | Path, what: str = "file name") -> str:
    """``path`` unchanged when it is ``/``-separated safe components (a file inside a repository
    or an archive), else FlowRVSError naming ``source``."""
    if not isinstance(path, str) or not path:
        raise FlowRVSError(f"{source}: bad {what} {path!r}: empty or not a string")
    for part in path.split("/"):
        problem = name_problem(part)
        if problem is not None:
            raise FlowRVSError(f"{source}: bad {what} {path!r}: a component {problem}")
    return path
