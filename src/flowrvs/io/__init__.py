"""Frames in and masks out: the streamed video reader, writers, overlays, mask formats, atomic files."""
