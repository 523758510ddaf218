"""Encoding frames: MP4 videos (whole or frame by frame) and animated GIFs.

Frames are ``(H, W, 3)`` uint8 RGB in ``[0, 255]`` (``(T, H, W, 3)`` for a whole video). Every
file is written beside its path and renamed onto it when complete (:mod:`flowrvs.io.atomic`).
:func:`write_video` and :class:`VideoWriter` give the same pixels.
"""

from __future__ import annotations

import contextlib
import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from flowrvs.errors import FlowRVSError
from flowrvs.io.atomic import atomic_path
from flowrvs.io.checks import av_reason, check_frames, one_line


def _video_codec() -> str:
    """``libx264`` when the installed PyAV/FFmpeg can encode it, else ``mpeg4``."""
    if "libx264" in av.codecs_available:
        with contextlib.suppress(av.codec.codec.UnknownCodecError):  # listed, but no encoder
            av.codec.Codec("libx264", "w")
            return "libx264"
    return "mpeg4"


def _check_fps(fps: float) -> None:
    if not (isinstance(fps, (int, float, np.number)) and math.isfinite(fps) and fps > 0):
        raise FlowRVSError(f"fps must be a positive number, got {fps!r}")


class VideoWriter:
    """Encode ``(H, W, 3)`` uint8 RGB frames into an MP4 (yuv420p) one at a time.

    Encodes H.264 with libx264 (CRF 18) when the installed PyAV has it, otherwise MPEG-4 Part 2
    (``mpeg4``); the container is MP4 whatever the suffix of ``path``. The size comes from the
    first frame; an odd height or width is padded by repeating the last row/column. The file is
    written beside ``path`` and renamed onto it by :meth:`close`; :meth:`abort` (or leaving a
    ``with`` block by an exception) deletes it instead.
    """

    def __init__(self, path, fps: float):
        _check_fps(fps)
        self.path = Path(path)
        self.fps = float(fps)
        self.frames_written = 0
        self._exit = contextlib.ExitStack()
        self._tmp = self._exit.enter_context(atomic_path(self.path))
        self._container = None
        self._stream = None
        self._size: tuple[int, int] | None = None  # (H, W) of the frames given

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _open(self, height: int, width: int) -> None:
        codec = _video_codec()
        rate = Fraction(self.fps).limit_denominator(1001)
        self._container = av.open(str(self._tmp), mode="w", format="mp4", options={"movflags": "+faststart"})
        options = {"crf": "18", "preset": "medium"} if codec == "libx264" else {}
        stream = self._container.add_stream(codec, rate=rate, options=options)
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = 1 / rate
        if codec != "libx264":
            stream.bit_rate = max(2_000_000, int(stream.width * stream.height * self.fps * 0.3))
        self._stream = stream

    def write(self, frame: np.ndarray) -> None:
        """Append one ``(H, W, 3)`` uint8 RGB frame (all frames the same size)."""
        if not (isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[-1] == 3):
            raise ValueError(f"a frame must be an (H,W,3) uint8 array, got {getattr(frame, 'shape', type(frame))}")
        if self._size is None:
            self._size = frame.shape[:2]
        elif frame.shape[:2] != self._size:
            raise ValueError(f"frame {self.frames_written} is {frame.shape[:2]}, the first was {self._size}")
        pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
        if pad_h or pad_w:
            frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        with self._errors():
            if self._container is None:
                self._open(*self._size)
            out = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            out.pts = self.frames_written
            self._container.mux(self._stream.encode(out))
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and put the file at ``path``."""
        if self._container is None:
            self.abort()
            raise ValueError("no frames were written")
        try:
            with self._errors():
                self._container.mux(self._stream.encode(None))
                self._container.close()
        except BaseException as exc:
            self._exit.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._exit.close()

    def abort(self) -> None:
        """Stop writing and delete the temporary file; ``path`` is left as it was."""
        if self._container is not None:
            with contextlib.suppress(av.FFmpegError, OSError):  # the file is deleted anyway
                self._container.close()
            self._container = None
        err = RuntimeError("video writing aborted")
        self._exit.__exit__(RuntimeError, err, None)

    @contextlib.contextmanager
    def _errors(self):
        try:
            yield
        except av.FFmpegError as exc:
            raise FlowRVSError(f"cannot encode video {self.path}: {av_reason(exc)}") from exc
        except OSError as exc:
            raise FlowRVSError(f"cannot write video {self.path}: {one_line(exc)}") from exc


def write_video(path, frames: np.ndarray, fps: float) -> None:
    """Write ``frames`` ``(T, H, W, 3)`` uint8 RGB as an MP4 (yuv420p) at ``path``, atomically.

    See :class:`VideoWriter` (the same encoder, frame by frame). Reading the file back may give
    ``H+1``/``W+1`` (odd sides are padded): the output is for viewing, not a lossless store.
    """
    check_frames(frames)
    _check_fps(fps)
    with VideoWriter(path, fps) as writer:
        for frame in frames:
            writer.write(frame)


def write_gif(path, frames: np.ndarray, fps: float) -> None:
    """Write ``frames`` ``(T, H, W, 3)`` uint8 RGB as an animated GIF looping forever, atomically.

    Each frame gets its own adaptive 256-colour palette. GIF timing is in 1/100 s, and frame
    delays below 20 ms are clamped (browsers slow them down anyway). Pillow merges consecutive
    identical frames into one longer frame.
    """
    check_frames(frames)
    _check_fps(fps)
    duration = max(20, int(round(1000.0 / float(fps))))
    images = [Image.fromarray(np.ascontiguousarray(f)) for f in frames]
    try:
        with atomic_path(path) as tmp:
            images[0].save(
                tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0
            )
    except OSError as exc:
        raise FlowRVSError(f"cannot write GIF {path}: {one_line(exc)}") from exc
