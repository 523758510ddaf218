"""Metrics, benchmark protocols and layouts, and evaluation of a model on a benchmark."""
