"""Builders shared by several test modules (fake datasets, tiny training configs, benchmark scripts).

Test modules import from here, never from each other: ``from helpers.ytvos_davis import make_ytvos``
(pytest puts ``tests/`` on ``sys.path`` because it has no ``__init__.py``).
"""
