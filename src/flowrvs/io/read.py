"""The one video reader: every source opened as a stream of frames.

Frames are ``(H, W, 3)`` uint8 RGB in ``[0, 255]``. :func:`open_video` opens a source and
knows its frame names, fps and size before decoding more than the first frame; iterating the
:class:`VideoStream` it returns yields ``(name, frame)`` one frame at a time. Each kind of
source is implemented once, as such a stream:

* a video file (``VIDEO_EXTENSIONS``): the first video stream decoded with PyAV, RGB24,
  display rotation applied, fps from the container (GIFs with Pillow, fps from the frame
  duration);
* a single image file (``IMAGE_EXTENSIONS``): one frame, EXIF orientation applied;
* a folder: every ``IMAGE_EXTENSIONS`` file in it (hidden files skipped) in natural order
  (``2.jpg`` before ``10.jpg``); the names are the file stems;
* a list/tuple of PIL images or ``(H, W, 3)`` uint8 arrays (or one PIL image), as RGB;
* a uint8 array ``(T, H, W, 3)``, ``(H, W, 3)`` (one frame), ``(T, H, W)`` or ``(H, W)``
  greyscale (a 3-D array whose last axis is 3 is one RGB image); a 4th channel is dropped;
* a :class:`Video` (already decoded frames) or a :class:`VideoStream`.

Frames are named ``f"{i:05d}"`` except in a folder; fps is 24.0 unless the file says.

:func:`read_video` is that stream collected into a :class:`Video` (``(T, H, W, 3)`` uint8).
Problems with the input raise :class:`~flowrvs.errors.FlowRVSError` with a one-line message
(the library's error attached as the cause): on opening for everything that can be found
then, while iterating for a file that turns out truncated.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import av
import numpy as np
from PIL import Image, ImageOps, ImageSequence

from flowrvs.errors import FlowRVSError
from flowrvs.io.checks import PIL_ERRORS, av_reason, one_line

VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mov", ".mkv", ".gif")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DEFAULT_FPS = 24.0

_SWAPS_SIDES = {5, 6, 7, 8}  # EXIF orientations that turn the image by 90 degrees


@dataclass
class Video:
    """Decoded frames with their names and frame rate.

    ``frames`` is ``(T, H, W, 3)`` uint8 RGB; ``names`` has one entry per frame, without
    extension (file stems for a frame folder, ``f"{i:05d}"`` otherwise); ``fps`` comes from the
    container when known, else 24.0.
    """

    frames: np.ndarray
    names: list[str]
    fps: float

    def __len__(self) -> int:
        return int(self.frames.shape[0])


class VideoStream:
    """A video read lazily, one frame at a time.

    ``names`` (one per frame), ``fps``, ``height`` and ``width`` (of the RGB frames, after any
    rotation) are known on opening; iterating yields ``(name, frame)`` with ``frame``
    ``(H, W, 3)`` uint8 RGB, decoding as it goes, so only one frame is held at a time. Each
    iteration starts again from the first frame. A source whose frames turn out fewer than
    announced (a truncated file) or of another size raises :class:`FlowRVSError` when that is
    found.

    ``frames`` makes a fresh iterator over the source's frames; it may give more frames than
    ``names`` (the stream stops after ``len(names)``).
    """

    def __init__(self, source: str, names: list[str], fps: float, height: int, width: int,
                 frames: Callable[[], Iterator[np.ndarray]]):
        self.source = source
        self.names = names
        self.fps = fps
        self.height = height
        self.width = width
        self._frames = frames

    @property
    def num_frames(self) -> int:
        return len(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        count = 0
        if not self.names:
            return
        for frame in self._frames():
            if frame.shape != (self.height, self.width, 3):
                raise FlowRVSError(
                    f"frame {self.names[count]} of {self.source} is {frame.shape[1]}x{frame.shape[0]}, "
                    f"the first is {self.width}x{self.height}; all frames must have the same size"
                )
            yield self.names[count], frame
            count += 1
            if count == len(self.names):
                return
        raise FlowRVSError(
            f"{self.source} ended after {count} of the {len(self.names)} frames it announced (truncated or corrupt?)"
        )

    def head(self, max_frames: int) -> "VideoStream":
        """The first ``max_frames`` frames of this stream (all of them if it has fewer)."""
        return VideoStream(self.source, self.names[:max_frames], self.fps, self.height, self.width, self._frames)

    def read(self) -> Video:
        """All frames at once: a :class:`Video` with ``frames`` ``(T, H, W, 3)`` uint8."""
        frames = np.empty((self.num_frames, self.height, self.width, 3), dtype=np.uint8)
        for i, (_, frame) in enumerate(self):
            frames[i] = frame
        return Video(frames, list(self.names), self.fps)


def open_video(source, max_frames: int | None = None) -> VideoStream:
    """Open ``source`` (see the module docstring) for reading frame by frame.

    At most ``max_frames`` frames are given. Problems found on opening (a missing or
    unreadable file, a folder of mixed frame sizes, a bad array) raise :class:`FlowRVSError`
    with a one-line message here, before anything is iterated; the first frame is decoded to
    check that the source can be read. A :class:`VideoStream` is returned as it is (cut to
    ``max_frames``).
    """
    _check_max_frames(max_frames)
    if isinstance(source, VideoStream):
        return source if max_frames is None else source.head(max_frames)
    if isinstance(source, Video):
        return _open_decoded(source, max_frames)
    if isinstance(source, np.ndarray):
        return _open_array(source, max_frames)
    if isinstance(source, (Image.Image, list, tuple)):
        return _open_list([source] if isinstance(source, Image.Image) else list(source), max_frames)
    path = _source_path(source)
    if path.is_dir():
        return _open_folder(path, max_frames)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        return _open_gif(path, max_frames)
    if suffix in VIDEO_EXTENSIONS:
        return _open_container(path, max_frames)
    if suffix in IMAGE_EXTENSIONS:
        first = _load_image(path)
        return VideoStream(str(path), _index_names(1), DEFAULT_FPS, *first.shape[:2], lambda: iter([_load_image(path)]))
    raise FlowRVSError(
        f"{path} is not a supported video or image "
        f"(extensions: {' '.join(VIDEO_EXTENSIONS + IMAGE_EXTENSIONS)})"
    )


def read_video(source, max_frames: int | None = None) -> Video:
    """Read all frames of ``source`` (what :func:`open_video` takes): ``open_video(...).read()``.

    Returns a :class:`Video` with ``frames`` ``(T, H, W, 3)`` uint8, at most ``max_frames`` of
    them. Problems with the input raise :class:`FlowRVSError` with a one-line message.
    """
    return open_video(source, max_frames).read()


def _index_names(n: int) -> list[str]:
    return [f"{i:05d}" for i in range(n)]


def _natural_key(name: str) -> tuple:
    parts = re.split(r"(\d+)", name)
    return tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(parts)), name


def _check_max_frames(max_frames: int | None) -> None:
    if max_frames is None:
        return
    if isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer)) or max_frames < 1:
        raise FlowRVSError(f"max_frames must be a positive integer or None, got {max_frames!r}")


def _source_path(source) -> Path:
    """The existing file or folder ``source`` names, or a one-line error."""
    if not isinstance(source, (str, os.PathLike)):
        raise FlowRVSError(
            f"cannot read a video from a {type(source).__name__}; "
            "pass a path, a uint8 array or a list of PIL images"
        )
    path = Path(source).expanduser()
    if not path.exists():
        raise FlowRVSError(f"no such file or folder: {path}")
    return path


def _first(frames: Iterator[np.ndarray], what: str) -> np.ndarray:
    """The first frame of a frame iterator (which is then closed) of ``what``."""
    try:
        return next(frames)
    except StopIteration as exc:
        raise FlowRVSError(f"{what} has no frames") from exc
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()


# ---- still images, GIFs and in-memory images (Pillow) ----------------------------------------


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
    """A PIL image of any mode -> ``(H, W, 3)`` uint8 RGB (16-bit greyscale is rescaled)."""
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        grey = np.asarray(img, dtype=np.float64)
        if img.mode != "F" and grey.max(initial=0) > 255:
            grey = grey / 257.0
        grey = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def _load_image(path: Path) -> np.ndarray:
    """One still image (EXIF orientation applied) -> ``(H, W, 3)`` uint8 RGB."""
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            return _pil_to_rgb(img)
    except PIL_ERRORS as exc:
        raise FlowRVSError(f"cannot read image {path}: {one_line(exc)}") from exc


def _image_shape(path: Path) -> tuple[int, int]:
    """``(H, W)`` of an image after its EXIF orientation, from its header (no decoding)."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            orientation = img.getexif().get(0x0112)
    except PIL_ERRORS as exc:
        raise FlowRVSError(f"cannot read image {path}: {one_line(exc)}") from exc
    return (w, h) if orientation in _SWAPS_SIDES else (h, w)


def _open_gif(path: Path, max_frames: int | None) -> VideoStream:
    """A GIF: fps from the first frame's duration, frames counted from its header."""
    try:
        with Image.open(path) as img:
            duration = img.info.get("duration") or 0
            check_header(path, *img.size, 0)
            count = int(getattr(img, "n_frames", 1))
    except PIL_ERRORS as exc:
        raise FlowRVSError(f"cannot read GIF {path}: {one_line(exc)}") from exc
    fps = 1000.0 / duration if duration > 0 else DEFAULT_FPS
    first = _first(_iter_gif(path), f"GIF {path}")
    count = count if max_frames is None else min(count, max_frames)
    return VideoStream(str(path), _index_names(count), fps, *first.shape[:2], lambda: _iter_gif(path))


def _iter_gif(path: Path) -> Iterator[np.ndarray]:
    """The frames of a GIF as ``(H, W, 3)`` uint8, one at a time."""
    try:
        with Image.open(path) as img:
            for frame in ImageSequence.Iterator(img):
                yield _pil_to_rgb(frame)
    except PIL_ERRORS as exc:
        raise FlowRVSError(f"cannot read GIF {path}: {one_line(exc)}") from exc


def _open_folder(folder: Path, max_frames: int | None) -> VideoStream:
    """A folder of frame images: sizes checked from the headers on opening, frames read lazily."""
    files = _folder_files(folder, max_frames)
    h, w = _image_shape(files[0])
    for p in files[1:]:
        shape = _image_shape(p)
        if shape != (h, w):
            raise FlowRVSError(
                f"frame {p} is {shape[1]}x{shape[0]} but {files[0].name} is "
                f"{w}x{h}; all frames in {folder} must have the same size"
            )
    return VideoStream(str(folder), [p.stem for p in files], DEFAULT_FPS, h, w, lambda: map(_load_image, files))


def _folder_files(folder: Path, max_frames: int | None) -> list[Path]:
    """The frame files of a folder in natural order (checked: some exist, stems unique)."""
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    ]
    if not files:
        raise FlowRVSError(f"folder {folder} has no frames (no {'/'.join(IMAGE_EXTENSIONS)} files)")
    files.sort(key=lambda p: _natural_key(p.name))
    files = files[:max_frames]
    seen: dict[str, Path] = {}
    for p in files:
        if p.stem in seen:
            raise FlowRVSError(
                f"folder {folder} has two frames named {p.stem!r}: {seen[p.stem].name} and {p.name}"
            )
        seen[p.stem] = p
    return files


# ---- video containers (PyAV) -----------------------------------------------------------------


@contextlib.contextmanager
def _av_errors(path: Path) -> Iterator[None]:
    """FFmpeg's errors on ``path`` as one-line :class:`FlowRVSError`."""
    try:
        yield
    except av.error.EOFError as exc:
        raise FlowRVSError(f"video {path} has no frames (the file is empty or truncated)") from exc
    except av.FFmpegError as exc:
        raise FlowRVSError(f"cannot decode video {path}: {av_reason(exc)}") from exc


def _stream_fps(stream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            fps = float(rate)
            if math.isfinite(fps) and 0 < fps <= 1000:
                return fps
    return DEFAULT_FPS


#: Headers claiming more than this are refused before any frame is decoded: a frame side past
#: 16384 pixels (beyond what H.264/HEVC level 6.2 codes) or more than a million frames (4.6 hours
#: at 60 fps) is a damaged or hostile file, not a video anyone segments.
MAX_SIDE = 16384
MAX_HEADER_FRAMES = 1_000_000


def check_header(path: Path, width: int, height: int, frames: int) -> None:
    """FlowRVSError when a header's claimed size or frame count is absurd (see :data:`MAX_SIDE`)."""
    if width > MAX_SIDE or height > MAX_SIDE:
        raise FlowRVSError(f"{path}: its header claims {width}x{height} frames; refusing sides over {MAX_SIDE} pixels")
    if frames > MAX_HEADER_FRAMES:
        raise FlowRVSError(f"{path}: its header claims {frames} frames; refusing more than {MAX_HEADER_FRAMES}")


def _video_stream(container, path: Path):
    if not container.streams.video:
        raise FlowRVSError(f"{path} has no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:  # a codec id FFmpeg does not know (a damaged header)
        raise FlowRVSError(f"cannot decode video {path}: its video stream's codec is unknown (not a video file, or corrupt)")
    return stream


def _open_container(path: Path, max_frames: int | None) -> VideoStream:
    """The first video stream of a container. The frame count comes from the header, else from
    counting its packets (no decoding); the first frame is decoded to check the file."""
    with _av_errors(path), av.open(str(path), mode="r") as container:
        stream = _video_stream(container, path)
        fps = _stream_fps(stream)
        count = int(stream.frames or 0)
        check_header(path, int(stream.codec_context.width or 0), int(stream.codec_context.height or 0), count)
        if count <= 0:
            count = sum(1 for packet in container.demux(stream) if packet.size)
    first = _first(_iter_container(path), f"video {path}")
    count = count if max_frames is None else min(count, max_frames)
    if count < 1:
        raise FlowRVSError(f"video {path} has no frames")
    return VideoStream(str(path), _index_names(count), fps, *first.shape[:2], lambda: _iter_container(path))


def _iter_container(path: Path) -> Iterator[np.ndarray]:
    """Decode the first video stream frame by frame, honouring the display rotation."""
    count = 0
    with _av_errors(path), av.open(str(path), mode="r") as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        size = None
        with contextlib.suppress(av.error.EOFError):
            for frame in container.decode(stream):
                if size is None:
                    size = (frame.width, frame.height)
                if (frame.width, frame.height) != size:
                    frame = frame.reformat(width=size[0], height=size[1])
                arr = frame.to_ndarray(format="rgb24")
                turns = round((getattr(frame, "rotation", 0) or 0) / 90) % 4
                if turns:
                    arr = np.ascontiguousarray(np.rot90(arr, turns))
                yield arr
                count += 1
    if not count:
        raise FlowRVSError(f"video {path} has no frames")


# ---- frames in memory ------------------------------------------------------------------------


def _open_decoded(video: Video, max_frames: int | None) -> VideoStream:
    n = len(video) if max_frames is None else min(len(video), max_frames)
    frames = video.frames[:n]
    return VideoStream("video", list(video.names[:n]), video.fps, *frames.shape[1:3], lambda: iter(frames))


def _open_array(source: np.ndarray, max_frames: int | None) -> VideoStream:
    frames = _array_to_frames(source)[:max_frames]
    return VideoStream("array", _index_names(len(frames)), DEFAULT_FPS, *frames.shape[1:3], lambda: iter(frames))


def _array_to_frames(arr: np.ndarray, what: str = "array") -> np.ndarray:
    """uint8 ``(T,H,W,3)``, ``(H,W,3)``, ``(T,H,W)``, ``(H,W)``, or 1/4-channel variants -> ``(T,H,W,3)``."""
    if arr.dtype != np.uint8:
        raise FlowRVSError(
            f"{what} must have dtype uint8 with values 0-255, got {arr.dtype}"
            + (" (convert, e.g. (x * 255).round().astype(np.uint8))" if arr.dtype.kind == "f" else "")
        )
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4)):
        arr = arr[None]
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3, 4):
        raise FlowRVSError(
            f"{what} has shape {arr.shape}; expected (T,H,W,3), (H,W,3), (T,H,W) or (H,W) uint8"
        )
    if 0 in arr.shape:
        raise FlowRVSError(f"{what} has shape {arr.shape} with a zero-sized dimension (no frames)")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif arr.shape[-1] == 4:
        arr = arr[..., :3]
    return np.ascontiguousarray(arr)


def _open_list(items: Sequence, max_frames: int | None) -> VideoStream:
    """PIL images or ``(H, W, 3)`` uint8 arrays: types and sizes checked on opening."""
    items = items[:max_frames]
    if len(items) == 0:
        raise FlowRVSError("empty list of images: need at least one frame")
    first = None
    for i, item in enumerate(items):
        if isinstance(item, Image.Image):
            shape = (item.height, item.width)
        else:
            shape = _list_item(i, item).shape[:2]
        if first is None:
            first = shape
        elif shape != first:
            raise FlowRVSError(
                f"image {i} of the list is {shape[1]}x{shape[0]} but image 0 is "
                f"{first[1]}x{first[0]}; all frames must have the same size"
            )
    height, width = _list_item(0, items[0]).shape[:2]
    return VideoStream(
        "list of images", _index_names(len(items)), DEFAULT_FPS, height, width,
        lambda: (_list_item(i, item) for i, item in enumerate(items)),
    )


def _list_item(i: int, item) -> np.ndarray:
    """Item ``i`` of a list of frames -> ``(H, W, 3)`` uint8 RGB."""
    if isinstance(item, Image.Image):
        try:
            return _pil_to_rgb(item)
        except PIL_ERRORS as exc:
            raise FlowRVSError(f"cannot convert image {i} of the list to RGB: {one_line(exc)}") from exc
    if isinstance(item, np.ndarray):
        arr = _array_to_frames(item, what=f"item {i} of the list")
        if arr.shape[0] != 1:
            raise FlowRVSError(f"item {i} of the list has shape {item.shape}; expected one (H,W,3) image")
        return arr[0]
    raise FlowRVSError(f"item {i} of the list is a {type(item).__name__}; expected a PIL image or uint8 array")
