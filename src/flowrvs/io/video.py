"""Reading and writing videos, frame folders, mask PNGs and overlays.

Frames are always ``(T, H, W, 3)`` uint8 RGB in ``[0, 255]``; masks are ``(T, H, W)`` bool.
Video containers go through PyAV, still images and GIFs through Pillow. Videos are read whole
(:func:`read_video`) or frame by frame (:func:`open_video`, and :func:`iter_windows` for the
windows of a long video), and written whole (:func:`write_video`) or frame by frame
(:class:`VideoWriter`); both ways give the same pixels.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

import av
import numpy as np
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from flowrvs.errors import FlowRVSError
from flowrvs.io.atomic import atomic_path

if TYPE_CHECKING:
    from flowrvs.pipelines.windows import Window

VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mov", ".mkv", ".gif")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DEFAULT_FPS = 24.0

PALETTE: list[tuple[int, int, int]] = [
    (230, 25, 75),    # red
    (60, 180, 75),    # green
    (0, 130, 200),    # blue
    (255, 225, 25),   # yellow
    (245, 130, 48),   # orange
    (145, 30, 180),   # purple
    (70, 240, 240),   # cyan
    (240, 50, 230),   # magenta
    (210, 245, 60),   # lime
    (0, 128, 128),    # teal
    (255, 105, 180),  # pink
    (128, 64, 0),     # brown
]

_PIL_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


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
    except _PIL_ERRORS as exc:
        raise FlowRVSError(f"cannot read image {path}: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "not an image file, or corrupt"
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _iter_gif(path: Path, max_frames: int | None) -> Iterator[np.ndarray]:
    """The frames of a GIF as ``(H, W, 3)`` uint8, one at a time."""
    count = 0
    shape = None
    try:
        with Image.open(path) as img:
            for frame in ImageSequence.Iterator(img):
                arr = _pil_to_rgb(frame)
                if shape is not None and arr.shape != shape:
                    raise FlowRVSError(f"GIF {path} changes frame size at frame {count}")
                shape = arr.shape
                yield arr
                count += 1
                if max_frames is not None and count >= max_frames:
                    break
    except _PIL_ERRORS as exc:
        raise FlowRVSError(f"cannot read GIF {path}: {_one_line(exc)}") from None
    if not count:
        raise FlowRVSError(f"GIF {path} has no frames")


def _gif_fps(path: Path) -> float:
    try:
        with Image.open(path) as img:
            duration = img.info.get("duration") or 0
    except _PIL_ERRORS as exc:
        raise FlowRVSError(f"cannot read GIF {path}: {_one_line(exc)}") from None
    return 1000.0 / duration if duration > 0 else DEFAULT_FPS


def _read_gif(path: Path, max_frames: int | None) -> Video:
    fps = _gif_fps(path)
    frames = list(_iter_gif(path, max_frames))
    return Video(np.stack(frames), _index_names(len(frames)), fps)


def _stream_fps(stream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            fps = float(rate)
            if math.isfinite(fps) and 0 < fps <= 1000:
                return fps
    return DEFAULT_FPS


def _iter_container(path: Path, max_frames: int | None) -> Iterator[np.ndarray]:
    """Decode the first video stream frame by frame, honouring the display rotation."""
    count = 0
    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.video:
                raise FlowRVSError(f"{path} has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            size = None
            try:
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
                    if max_frames is not None and count >= max_frames:
                        break
            except av.error.EOFError:
                pass
    except av.error.EOFError:
        raise FlowRVSError(f"video {path} has no frames (the file is empty or truncated)") from None
    except av.FFmpegError as exc:
        raise FlowRVSError(f"cannot decode video {path}: {_av_reason(exc)}") from None
    if not count:
        raise FlowRVSError(f"video {path} has no frames")


def _container_info(path: Path, count_frames: bool = True) -> tuple[float, int]:
    """``(fps, frames announced)`` of the first video stream; the count comes from the container
    header, else from counting its packets (no decoding; skipped, 0, when not ``count_frames``)."""
    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.video:
                raise FlowRVSError(f"{path} has no video stream")
            stream = container.streams.video[0]
            fps = _stream_fps(stream)
            count = int(stream.frames or 0)
            if count <= 0 and count_frames:
                count = sum(1 for packet in container.demux(stream) if packet.size)
    except av.error.EOFError:
        raise FlowRVSError(f"video {path} has no frames (the file is empty or truncated)") from None
    except av.FFmpegError as exc:
        raise FlowRVSError(f"cannot decode video {path}: {_av_reason(exc)}") from None
    return fps, count


def _read_container(path: Path, max_frames: int | None) -> Video:
    fps, _ = _container_info(path, count_frames=False)
    frames = list(_iter_container(path, max_frames))
    return Video(np.stack(frames), _index_names(len(frames)), fps)


def _av_reason(exc: av.FFmpegError) -> str:
    reason = getattr(exc, "strerror", None) or _one_line(exc)
    if isinstance(exc, av.error.InvalidDataError):
        reason += " (not a video file, or corrupt)"
    return " ".join(str(reason).split())


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
    if max_frames is not None:
        files = files[:max_frames]
    seen: dict[str, Path] = {}
    for p in files:
        if p.stem in seen:
            raise FlowRVSError(
                f"folder {folder} has two frames named {p.stem!r}: {seen[p.stem].name} and {p.name}"
            )
        seen[p.stem] = p
    return files


def _size_mismatch(folder: Path, path: Path, first: Path, got: tuple[int, int], want: tuple[int, int]) -> FlowRVSError:
    """got/want: ``(H, W)``."""
    return FlowRVSError(
        f"frame {path} is {got[1]}x{got[0]} but {first.name} is "
        f"{want[1]}x{want[0]}; all frames in {folder} must have the same size"
    )


def _read_folder(folder: Path, max_frames: int | None) -> Video:
    files = _folder_files(folder, max_frames)
    first = _load_image(files[0])
    frames = np.empty((len(files), *first.shape), dtype=np.uint8)
    frames[0] = first
    for i, p in enumerate(files[1:], start=1):
        arr = _load_image(p)
        if arr.shape != first.shape:
            raise _size_mismatch(folder, p, files[0], arr.shape[:2], first.shape[:2])
        frames[i] = arr
    return Video(frames, [p.stem for p in files], DEFAULT_FPS)


_SWAPS_SIDES = {5, 6, 7, 8}  # EXIF orientations that turn the image by 90 degrees


def _image_shape(path: Path) -> tuple[int, int]:
    """``(H, W)`` of an image after its EXIF orientation, from its header (no decoding)."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            orientation = img.getexif().get(0x0112)
    except _PIL_ERRORS as exc:
        raise FlowRVSError(f"cannot read image {path}: {_one_line(exc)}") from None
    return (w, h) if orientation in _SWAPS_SIDES else (h, w)


def _array_to_frames(arr: np.ndarray, what: str = "array") -> np.ndarray:
    """uint8 ``(T,H,W,3)``, ``(H,W,3)``, ``(T,H,W)``, ``(H,W)``, or 1/4-channel variants -> ``(T,H,W,3)``."""
    if arr.dtype != np.uint8:
        raise FlowRVSError(
            f"{what} must have dtype uint8 with values 0-255, got {arr.dtype}"
            + (" (convert, e.g. (x * 255).round().astype(np.uint8))" if arr.dtype.kind == "f" else "")
        )
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim == 3 and arr.shape[-1] in (3, 4):
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


def _check_list(items: Sequence) -> None:
    """Types and sizes of a list of frames (PIL images by their size, arrays by converting them)."""
    if len(items) == 0:
        raise FlowRVSError("empty list of images: need at least one frame")
    first = None
    for i, item in enumerate(items):
        if isinstance(item, Image.Image):
            shape = (item.height, item.width)
        elif isinstance(item, np.ndarray):
            shape = _list_item(i, item).shape[:2]
        else:
            raise FlowRVSError(
                f"item {i} of the list is a {type(item).__name__}; expected a PIL image or uint8 array"
            )
        if first is None:
            first = shape
        elif shape != first:
            raise FlowRVSError(
                f"image {i} of the list is {shape[1]}x{shape[0]} but image 0 is "
                f"{first[1]}x{first[0]}; all frames must have the same size"
            )


def _list_item(i: int, item) -> np.ndarray:
    """Item ``i`` of a list of frames -> ``(H, W, 3)`` uint8 RGB."""
    if isinstance(item, Image.Image):
        try:
            return _pil_to_rgb(item)
        except _PIL_ERRORS as exc:
            raise FlowRVSError(f"cannot convert image {i} of the list to RGB: {_one_line(exc)}") from None
    if isinstance(item, np.ndarray):
        arr = _array_to_frames(item, what=f"item {i} of the list")
        if arr.shape[0] != 1:
            raise FlowRVSError(f"item {i} of the list has shape {item.shape}; expected one (H,W,3) image")
        return arr[0]
    raise FlowRVSError(f"item {i} of the list is a {type(item).__name__}; expected a PIL image or uint8 array")


def _read_list(items: Sequence, max_frames: int | None) -> Video:
    if len(items) == 0:
        raise FlowRVSError("empty list of images: need at least one frame")
    if max_frames is not None:
        items = items[:max_frames]
    frames: list[np.ndarray] = []
    for i, item in enumerate(items):
        arr = _list_item(i, item)
        if frames and arr.shape != frames[0].shape:
            raise FlowRVSError(
                f"image {i} of the list is {arr.shape[1]}x{arr.shape[0]} but image 0 is "
                f"{frames[0].shape[1]}x{frames[0].shape[0]}; all frames must have the same size"
            )
        frames.append(arr)
    return Video(np.stack(frames), _index_names(len(frames)), DEFAULT_FPS)


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


def read_video(source, max_frames: int | None = None) -> Video:
    """Read frames from a video file, frame folder, image, array or list of PIL images.

    ``source`` may be:

    * a video file (``VIDEO_EXTENSIONS``): decoded with PyAV (GIFs with Pillow), all frames,
      RGB24, display rotation applied; ``fps`` from the container;
    * a folder: every ``IMAGE_EXTENSIONS`` file in it (hidden files skipped), natural order
      (``2.jpg`` before ``10.jpg``); ``names`` are the file stems;
    * a single image file (``IMAGE_EXTENSIONS``): one frame, EXIF orientation applied;
    * a uint8 array ``(T,H,W,3)``, ``(H,W,3)`` (one frame), ``(T,H,W)`` or ``(H,W)`` greyscale
      (a 3-D array whose last axis is 3 is read as one RGB image); a 4th channel is dropped.
      The result may share memory with the input;
    * a list/tuple of PIL images (or ``(H,W,3)`` uint8 arrays), converted to RGB;
    * a :class:`Video`, returned as is (cut to ``max_frames``).

    Returns a :class:`Video` with ``frames`` ``(T, H, W, 3)`` uint8. At most ``max_frames``
    frames are read. Problems with the input raise :class:`FlowRVSError` with a one-line message.
    """
    _check_max_frames(max_frames)
    if isinstance(source, Video):
        n = len(source) if max_frames is None else min(len(source), max_frames)
        return Video(source.frames[:n], list(source.names[:n]), source.fps)
    if isinstance(source, np.ndarray):
        frames = _array_to_frames(source)
        if max_frames is not None:
            frames = frames[:max_frames]
        return Video(frames, _index_names(len(frames)), DEFAULT_FPS)
    if isinstance(source, Image.Image):
        return _read_list([source], max_frames)
    if isinstance(source, (list, tuple)):
        return _read_list(source, max_frames)
    path = _source_path(source)
    if path.is_dir():
        return _read_folder(path, max_frames)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        return _read_gif(path, max_frames)
    if suffix in VIDEO_EXTENSIONS:
        return _read_container(path, max_frames)
    if suffix in IMAGE_EXTENSIONS:
        return Video(_load_image(path)[None], _index_names(1), DEFAULT_FPS)
    raise FlowRVSError(
        f"{path} is not a supported video or image "
        f"(extensions: {' '.join(VIDEO_EXTENSIONS + IMAGE_EXTENSIONS)})"
    )


class VideoStream:
    """A video read lazily, one frame at a time.

    ``names`` (one per frame, as :func:`read_video` names them), ``fps``, ``height`` and
    ``width`` (of the RGB frames, after any rotation) are known on opening; iterating yields
    ``(name, frame)`` with ``frame`` ``(H, W, 3)`` uint8 RGB, decoding as it goes, so only one
    frame is held at a time. Each iteration starts again from the first frame. A source whose
    frames turn out fewer or more than announced (a truncated file) raises
    :class:`FlowRVSError` when that is found.
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
        for frame in self._frames():
            if count == len(self.names):
                raise FlowRVSError(f"{self.source} has more frames than the {len(self.names)} it announced")
            if frame.shape != (self.height, self.width, 3):
                raise FlowRVSError(
                    f"frame {self.names[count]} of {self.source} is {frame.shape[1]}x{frame.shape[0]}, "
                    f"the first is {self.width}x{self.height}; all frames must have the same size"
                )
            yield self.names[count], frame
            count += 1
            if count == len(self.names):
                return
        if count < len(self.names):
            raise FlowRVSError(
                f"{self.source} ended after {count} of the {len(self.names)} frames it announced (truncated or corrupt?)"
            )

    def read(self) -> Video:
        """All frames at once, as :func:`read_video` gives them."""
        frames = np.empty((self.num_frames, self.height, self.width, 3), dtype=np.uint8)
        for i, (_, frame) in enumerate(self):
            frames[i] = frame
        return Video(frames, list(self.names), self.fps)


def _first(frames: Iterator[np.ndarray]) -> np.ndarray:
    try:
        return next(frames)
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()


def open_video(source, max_frames: int | None = None) -> VideoStream:
    """Open ``source`` for reading frame by frame; see :class:`VideoStream`.

    Takes what :func:`read_video` takes (or a :class:`VideoStream`, returned as it is) and gives
    the same names, fps and pixels, without holding the frames: video files decode as they are
    iterated, frame folders read one image at a time, arrays and lists are passed through frame
    by frame. Problems found on opening (a
    missing or unreadable file, a folder of mixed frame sizes, a bad array) raise
    :class:`FlowRVSError` with a one-line message here, before anything is iterated; the first
    frame is decoded to check that the source can be read.
    """
    _check_max_frames(max_frames)
    if isinstance(source, VideoStream) and max_frames is None:
        return source  # already open (e.g. checked before a model was loaded)
    if isinstance(source, (Video, np.ndarray, Image.Image, list, tuple)):
        return _open_in_memory(source, max_frames)
    path = _source_path(source)
    if path.is_dir():
        files = _folder_files(path, max_frames)
        h, w = _image_shape(files[0])
        for p in files[1:]:
            shape = _image_shape(p)
            if shape != (h, w):
                raise _size_mismatch(path, p, files[0], shape, (h, w))
        return VideoStream(str(path), [p.stem for p in files], DEFAULT_FPS, h, w, lambda: map(_load_image, files))
    suffix = path.suffix.lower()
    if suffix == ".gif":
        fps = _gif_fps(path)
        first = _first(_iter_gif(path, 1))
        try:
            with Image.open(path) as img:
                count = int(getattr(img, "n_frames", 1))
        except _PIL_ERRORS as exc:
            raise FlowRVSError(f"cannot read GIF {path}: {_one_line(exc)}") from None
        count = count if max_frames is None else min(count, max_frames)
        return VideoStream(str(path), _index_names(count), fps, *first.shape[:2], lambda: _iter_gif(path, max_frames))
    if suffix in VIDEO_EXTENSIONS:
        fps, count = _container_info(path)
        first = _first(_iter_container(path, 1))
        count = count if max_frames is None else min(count, max_frames)
        if count < 1:
            raise FlowRVSError(f"video {path} has no frames")
        return VideoStream(str(path), _index_names(count), fps, *first.shape[:2], lambda: _iter_container(path, max_frames))
    if suffix in IMAGE_EXTENSIONS:
        first = _load_image(path)
        return VideoStream(str(path), _index_names(1), DEFAULT_FPS, *first.shape[:2], lambda: iter([_load_image(path)]))
    raise FlowRVSError(
        f"{path} is not a supported video or image "
        f"(extensions: {' '.join(VIDEO_EXTENSIONS + IMAGE_EXTENSIONS)})"
    )


def _open_in_memory(source, max_frames: int | None) -> VideoStream:
    """Arrays, a :class:`Video`, PIL images and lists of them, frame by frame."""
    if isinstance(source, Video):
        video = read_video(source, max_frames)
        return VideoStream("video", video.names, video.fps, *video.frames.shape[1:3], lambda: iter(video.frames))
    if isinstance(source, np.ndarray):
        frames = _array_to_frames(source)[:max_frames]
        return VideoStream("array", _index_names(len(frames)), DEFAULT_FPS, *frames.shape[1:3], lambda: iter(frames))
    items = [source] if isinstance(source, Image.Image) else list(source)[:max_frames]
    _check_list(items)
    first = _list_item(0, items[0])
    return VideoStream(
        "list of images", _index_names(len(items)), DEFAULT_FPS, *first.shape[:2],
        lambda: (_list_item(i, item) for i, item in enumerate(items)),
    )


def iter_windows(stream: Iterable[tuple[str, np.ndarray]], plan: Sequence[Window]) -> Iterator[tuple[Window, np.ndarray]]:
    """Read ``stream``'s frames in the windows of ``plan`` (:func:`flowrvs.pipelines.windows.plan_windows`).

    Yields ``(window, frames)`` with ``frames`` a new ``(len(window), H, W, 3)`` uint8 array, in
    plan order. Frames are pulled from the stream only as the window being built needs them, and
    between windows only the frames the next window shares with this one are kept, so the
    generator holds at most ``len(window) + overlap`` frames whatever the length of the video.
    """
    frames = iter(stream)
    position = 0  # index of the next frame the stream will give
    carried: np.ndarray | None = None  # frames [carried_start, position) shared with the next window
    carried_start = 0
    for i, win in enumerate(plan):
        if i and win.start < plan[i - 1].start:
            raise ValueError(f"window {i} starts before window {i - 1}: plan out of order")
        out: np.ndarray | None = None
        filled = 0
        if carried is not None and win.start < position:
            keep = carried[win.start - carried_start :]
            filled = len(keep)
            out = np.empty((len(win), *keep.shape[1:]), dtype=np.uint8)
            out[:filled] = keep
        carried = keep = None
        while position < win.stop:
            try:
                _, frame = next(frames)
            except StopIteration:
                raise FlowRVSError(f"the video ended after {position} frames; window {i} needs frames up to {win.stop}") from None
            position += 1
            if position <= win.start:
                continue  # before the window (a plan with gaps)
            if out is None:
                out = np.empty((len(win), *frame.shape), dtype=np.uint8)
            out[filled] = frame
            filled += 1
        following = plan[i + 1] if i + 1 < len(plan) else None
        if following is not None and following.start < win.stop:
            carried_start = max(following.start, win.start)
            carried = out[carried_start - win.start :].copy()
        yield win, out


def _check_frames(frames: np.ndarray) -> None:
    ok = isinstance(frames, np.ndarray) and frames.dtype == np.uint8 and frames.ndim == 4
    if not ok or frames.shape[-1] != 3:
        shape = getattr(frames, "shape", None)
        dtype = getattr(frames, "dtype", type(frames).__name__)
        raise ValueError(f"frames must be a (T,H,W,3) uint8 array, got shape {shape} dtype {dtype}")
    if 0 in frames.shape:
        raise ValueError(f"frames has shape {frames.shape}; need at least one non-empty frame")


def check_mask_name(name: str) -> None:
    """A frame name usable as a file stem (no path separators, not empty, not . or ..)."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(f"bad mask name {name!r}")


def write_mask_png(path, mask: np.ndarray) -> None:
    """Write one ``(H, W)`` mask (nonzero = foreground) as an 8-bit 'L' PNG of 0/255, atomically."""
    img = Image.fromarray(np.where(np.asarray(mask).astype(bool), np.uint8(255), np.uint8(0)))
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def write_mask_pngs(folder, masks: np.ndarray, names: list[str]) -> None:
    """Write ``masks`` ``(T, H, W)`` bool as ``folder/<name>.png``: 8-bit 'L' PNGs with values 0/255.

    Non-bool masks count as True where nonzero. Each file is written atomically.
    """
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (T,H,W), got shape {masks.shape}")
    if len(names) != masks.shape[0]:
        raise ValueError(f"{masks.shape[0]} masks but {len(names)} names")
    if len(set(names)) != len(names):
        raise ValueError("mask names must be unique")
    for name in names:
        check_mask_name(name)
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for mask, name in zip(masks, names):
            write_mask_png(folder / f"{name}.png", mask)
    except OSError as exc:
        raise FlowRVSError(f"cannot write masks to {folder}: {_one_line(exc)}") from None


def _inner_contour(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` ``(H, W)`` bool with a 4-neighbour outside it (image borders don't count)."""
    padded = np.pad(mask, 1, mode="edge")
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def overlay_frame(frame: np.ndarray, masks, alpha: float = 0.5) -> np.ndarray:
    """One frame of :func:`overlay_masks`: ``frame`` ``(H, W, 3)`` uint8, ``masks`` ``(K, H, W)``
    bool (or a list of ``(H, W)``), prompt ``k`` in ``PALETTE[k % len(PALETTE)]``. Returns a new
    ``(H, W, 3)`` uint8 frame."""
    out = frame.astype(np.float32)
    for k, sel in enumerate(masks):
        sel = np.asarray(sel).astype(bool, copy=False)
        if not sel.any():
            continue
        colour = np.array(PALETTE[k % len(PALETTE)], dtype=np.float32)
        out[sel] = (1.0 - alpha) * out[sel] + alpha * colour
        out[_inner_contour(sel)] = colour
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def overlay_masks(frames: np.ndarray, masks: list[np.ndarray], alpha: float = 0.5) -> np.ndarray:
    """Blend each prompt's mask into ``frames`` in its own colour, with a 1-px contour.

    ``frames`` is ``(T, H, W, 3)`` uint8; ``masks`` holds one ``(T, H, W)`` bool array per
    prompt; prompt ``k`` uses ``PALETTE[k % len(PALETTE)]`` blended with weight ``alpha`` in
    ``[0, 1]``; later prompts are drawn over earlier ones. The contour lies on the mask's own
    edge pixels, so pixels outside every mask are returned unchanged. Returns ``(T, H, W, 3)`` uint8.
    """
    _check_frames(frames)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    masks = [np.asarray(m).astype(bool, copy=False) for m in masks]
    for k, m in enumerate(masks):
        if m.shape != frames.shape[:3]:
            raise ValueError(f"mask {k} has shape {m.shape}, frames are {frames.shape[:3]}")
    out = frames.copy()
    if not masks:
        return out
    for t in range(frames.shape[0]):
        out[t] = overlay_frame(frames[t], [m[t] for m in masks], alpha)
    return out


def _video_codec() -> str:
    """``libx264`` when the installed PyAV/FFmpeg can encode it, else ``mpeg4``."""
    if "libx264" in av.codecs_available:
        try:
            av.codec.Codec("libx264", "w")
            return "libx264"
        except Exception:
            pass
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
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        err = RuntimeError("video writing aborted")
        self._exit.__exit__(RuntimeError, err, None)

    @contextlib.contextmanager
    def _errors(self):
        try:
            yield
        except av.FFmpegError as exc:
            raise FlowRVSError(f"cannot encode video {self.path}: {_av_reason(exc)}") from None
        except OSError as exc:
            raise FlowRVSError(f"cannot write video {self.path}: {_one_line(exc)}") from None


def write_video(path, frames: np.ndarray, fps: float) -> None:
    """Write ``frames`` ``(T, H, W, 3)`` uint8 RGB as an MP4 (yuv420p) at ``path``, atomically.

    See :class:`VideoWriter` (the same encoder, frame by frame). Reading the file back may give
    ``H+1``/``W+1`` (odd sides are padded): the output is for viewing, not a lossless store.
    """
    _check_frames(frames)
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
    _check_frames(frames)
    _check_fps(fps)
    duration = max(20, int(round(1000.0 / float(fps))))
    images = [Image.fromarray(np.ascontiguousarray(f)) for f in frames]
    try:
        with atomic_path(path) as tmp:
            images[0].save(
                tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0
            )
    except OSError as exc:
        raise FlowRVSError(f"cannot write GIF {path}: {_one_line(exc)}") from None


def side_by_side(*videos: np.ndarray) -> np.ndarray:
    """Concatenate ``(T, H, W_i, 3)`` arrays with equal ``T`` and ``H`` along the width."""
    if not videos:
        raise ValueError("side_by_side needs at least one video")
    first = videos[0]
    for i, v in enumerate(videos):
        if v.ndim != 4 or v.shape[:2] != first.shape[:2] or v.shape[3] != first.shape[3]:
            raise ValueError(f"video {i} has shape {v.shape}, incompatible with video 0 {first.shape}")
    return np.concatenate(videos, axis=2)
