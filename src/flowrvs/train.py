"""Former home of the trainer; it lives in :mod:`flowrvs.training` now (this name re-exports it)."""

from .training import *  # noqa: F401,F403
from .training import __all__  # noqa: F401
