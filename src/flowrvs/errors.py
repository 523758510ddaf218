"""The one exception type for user mistakes.

Anything raised as :class:`FlowRVSError` is the user's to fix (a missing file, an empty
prompt, a checkpoint of the wrong shape). The command line prints its message on one line
and exits with status 2; library users catch it like any other exception.
"""


class FlowRVSError(Exception):
    """A problem with the user's input, stated in one line."""


def first_line(err: BaseException, default: str | None = None) -> str:
    """The first non-empty line of an exception's message (libraries' messages run long)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else (default or type(err).__name__)
