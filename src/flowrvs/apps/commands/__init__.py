"""Sub-commands of the `flowrvs` command line, one module each (see :mod:`flowrvs.apps.cli`)."""
