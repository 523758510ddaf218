"""Tests for flowrvs.io.video: reading, writing, masks, overlays."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from flowrvs.errors import FlowRVSError
from flowrvs.pipelines.windows import plan_windows
from flowrvs.io.video import (
    IMAGE_EXTENSIONS,
    PALETTE,
    VIDEO_EXTENSIONS,
    Video,
    VideoStream,
    iter_windows,
    open_video,
    overlay_masks,
    read_video,
    side_by_side,
    write_gif,
    write_mask_pngs,
    write_video,
)


def smooth_frames(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """(T, H, W, 3) uint8 of large flat blocks that drift slowly: benign for lossy codecs."""
    rng = np.random.default_rng(seed)
    frames = np.empty((t, h, w, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    base = rng.integers(40, 216, size=3)
    for i in range(t):
        img = np.empty((h, w, 3), dtype=np.float64)
        for c in range(3):
            img[..., c] = base[c] + 30 * np.sin(2 * np.pi * (xx / w + yy / (2 * h) + i / (4 * t) + c / 3))
        frames[i] = np.clip(img, 0, 255).astype(np.uint8)
        frames[i, h // 4 : h // 2, w // 4 + i : w // 2 + i] = (220, 60, 40)
    return frames


def distinct_frames(t: int, h: int, w: int) -> np.ndarray:
    """(T, H, W, 3) uint8 frames, each a different flat colour."""
    colours = np.array([PALETTE[i % len(PALETTE)] for i in range(t)], dtype=np.uint8)
    return np.broadcast_to(colours[:, None, None, :], (t, h, w, 3)).copy()


def test_extension_constants():
    assert VIDEO_EXTENSIONS == (".mp4", ".avi", ".webm", ".mov", ".mkv", ".gif")
    assert IMAGE_EXTENSIONS == (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def test_write_read_video_round_trip(tmp_path):
    frames = smooth_frames(12, 64, 96)
    path = tmp_path / "out" / "clip.mp4"
    write_video(path, frames, fps=12.0)
    assert path.is_file()
    assert not [p for p in path.parent.iterdir() if p.name != "clip.mp4"]  # no temp left over
    video = read_video(path)
    assert isinstance(video, Video)
    assert video.frames.shape == frames.shape and video.frames.dtype == np.uint8
    assert video.names == [f"{i:05d}" for i in range(12)]
    assert video.fps == pytest.approx(12.0)
    assert np.abs(video.frames.astype(np.int16) - frames).mean() < 8
    assert len(video) == 12


def test_write_video_ntsc_fps_and_max_frames(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, smooth_frames(6, 32, 32), fps=30000 / 1001)
    video = read_video(path, max_frames=4)
    assert video.fps == pytest.approx(29.97, abs=0.01)
    assert video.frames.shape[0] == 4


def test_write_video_odd_size_reads_back_within_one_pixel(tmp_path):
    frames = smooth_frames(5, 33, 47)
    path = tmp_path / "odd.mp4"
    write_video(path, frames, fps=24)
    video = read_video(path)
    t, h, w, _ = video.frames.shape
    assert t == 5
    assert 33 <= h <= 34 and 47 <= w <= 48
    assert np.abs(video.frames[:, :33, :47].astype(np.int16) - frames).mean() < 8


def test_read_video_applies_display_rotation(tmp_path):
    frames = smooth_frames(3, 32, 64)
    path = tmp_path / "rotated.mp4"
    with av.open(str(path), "w") as container:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        stream = container.add_stream(codec, rate=Fraction(24))
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(-90)  # a portrait phone clip: shown turned 90 degrees clockwise
        for i, arr in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    video = read_video(path)
    assert video.frames.shape == (3, 64, 32, 3)
    expected = np.rot90(frames, k=-1, axes=(1, 2))
    assert np.abs(video.frames.astype(np.int16) - expected).mean() < 8


def test_frame_folder_natural_sort_and_names(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    frames = distinct_frames(4, 16, 20)
    stems = ["frame10", "frame2", "frame1", "frame33"]
    for stem, arr in zip(stems, frames):
        Image.fromarray(arr).save(folder / f"{stem}.png")
    (folder / "notes.txt").write_text("not a frame")
    (folder / ".hidden.png").write_bytes(b"junk")
    video = read_video(folder)
    assert video.names == ["frame1", "frame2", "frame10", "frame33"]
    order = [stems.index(n) for n in video.names]
    assert np.array_equal(video.frames, frames[order])
    assert video.fps == 24.0
    assert read_video(str(folder), max_frames=2).names == ["frame1", "frame2"]


def test_frame_folder_numeric_names(tmp_path):
    for stem in ["10", "2", "1", "b", "a10", "a9"]:
        Image.new("RGB", (6, 4)).save(tmp_path / f"{stem}.jpg")
    assert read_video(tmp_path).names == ["1", "2", "10", "a9", "a10", "b"]


def test_frame_folder_jpeg_and_modes(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    rgb = smooth_frames(1, 24, 24)[0]
    Image.fromarray(rgb).save(folder / "00000.jpg", quality=95)
    Image.fromarray(rgb).convert("RGBA").save(folder / "00001.png")
    Image.fromarray(rgb[..., 0]).save(folder / "00002.png")  # 'L'
    Image.fromarray(rgb).convert("P").save(folder / "00003.png")
    video = read_video(folder)
    assert video.frames.shape == (4, 24, 24, 3)
    assert np.abs(video.frames[0].astype(np.int16) - rgb).mean() < 4
    assert np.array_equal(video.frames[1], rgb)
    assert np.array_equal(video.frames[2], np.repeat(rgb[..., :1], 3, axis=2))


def test_single_image(tmp_path):
    arr = distinct_frames(1, 10, 14)[0]
    path = tmp_path / "still.png"
    Image.fromarray(arr).convert("RGBA").save(path)
    video = read_video(path)
    assert video.frames.shape == (1, 10, 14, 3)
    assert np.array_equal(video.frames[0], arr)
    assert video.names == ["00000"] and video.fps == 24.0


def test_gif_round_trip(tmp_path):
    frames = distinct_frames(5, 20, 30)
    path = tmp_path / "anim.gif"
    write_gif(path, frames, fps=10)
    with Image.open(path) as img:
        assert img.n_frames == 5
        assert img.info.get("loop") == 0
    video = read_video(path)
    assert video.frames.shape == (5, 20, 30, 3)
    assert np.abs(video.frames.astype(np.int16) - frames).max() <= 8
    assert video.fps == pytest.approx(10.0)
    assert video.names == [f"{i:05d}" for i in range(5)]


def test_numpy_inputs():
    img = distinct_frames(1, 8, 9)[0]
    video = read_video(img)
    assert video.frames.shape == (1, 8, 9, 3) and video.names == ["00000"] and video.fps == 24.0
    clip = distinct_frames(3, 8, 9)
    assert np.array_equal(read_video(clip).frames, clip)
    grey = np.arange(2 * 8 * 9, dtype=np.uint8).reshape(2, 8, 9)
    video = read_video(grey)
    assert video.frames.shape == (2, 8, 9, 3)
    assert np.array_equal(video.frames[..., 1], grey)
    assert read_video(grey[0]).frames.shape == (1, 8, 9, 3)
    assert read_video(clip, max_frames=2).frames.shape[0] == 2


def test_list_of_pil_images():
    frames = distinct_frames(3, 12, 10)
    images = [
        Image.fromarray(frames[0]),
        Image.fromarray(frames[1]).convert("RGBA"),
        Image.fromarray(frames[2]).convert("P", palette=Image.Palette.ADAPTIVE),
    ]
    video = read_video(images)
    assert video.frames.shape == (3, 12, 10, 3)
    assert np.array_equal(video.frames, frames)
    assert video.names == ["00000", "00001", "00002"]
    assert read_video(tuple(images)).frames.shape[0] == 3


# bad sources and a word the one-line error must name; read_video and open_video both refuse them
BAD_SOURCES = [
    (lambda tmp: tmp / "missing.mp4", "missing.mp4"),
    (lambda tmp: tmp / "no_such_folder", "no_such_folder"),
    (lambda tmp: _write(tmp / "fake.mp4", b"this is just text, not a video\n" * 20), "fake.mp4"),
    (lambda tmp: _write(tmp / "fake.jpg", b"not a jpeg"), "fake.jpg"),
    (lambda tmp: _write(tmp / "fake.gif", b"GIF89a nonsense"), "fake.gif"),
    (lambda tmp: _write(tmp / "notes.txt", b"hello"), "notes.txt"),
    (lambda tmp: _mkdir(tmp / "empty"), "empty"),
    (lambda tmp: _mixed_sizes(tmp / "mixed"), "b.png"),
    (lambda tmp: np.zeros((2, 8, 8, 3), dtype=np.float32), "uint8"),
    (lambda tmp: np.zeros((2, 8, 8, 3), dtype=np.int64), "uint8"),
    (lambda tmp: np.zeros((2, 3, 8, 8, 3), dtype=np.uint8), "shape"),
    (lambda tmp: np.zeros((0, 8, 8, 3), dtype=np.uint8), "shape"),
    (lambda tmp: [], "empty"),
    (lambda tmp: [Image.new("RGB", (4, 4)), Image.new("RGB", (5, 4))], "image 1"),
    (lambda tmp: [np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.float64)], "item 1"),
    (lambda tmp: [Image.new("RGB", (4, 4)), "frame.png"], "item 1"),
    (lambda tmp: 42, "int"),
]


@pytest.mark.parametrize("make_source, needle", BAD_SOURCES)
def test_read_errors_are_one_line_flowrvs_errors(tmp_path, make_source, needle):
    source = make_source(tmp_path)
    with pytest.raises(FlowRVSError) as info:
        read_video(source)
    message = str(info.value)
    assert "\n" not in message
    assert needle in message


def test_empty_video_container_is_an_error(tmp_path):
    path = tmp_path / "empty.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=24)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        container.start_encoding()
    assert path.stat().st_size > 0
    with pytest.raises(FlowRVSError, match="no frames"):
        read_video(path)


def test_truncated_video_is_an_error_or_partial(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, smooth_frames(8, 32, 32), fps=24)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    try:
        video = read_video(path)
    except FlowRVSError as exc:
        assert "clip.mp4" in str(exc) and "\n" not in str(exc)
    else:
        assert video.frames.ndim == 4


def test_write_video_mpeg4_fallback(tmp_path, monkeypatch):
    import flowrvs.io.video as video_module

    monkeypatch.setattr(video_module, "_video_codec", lambda: "mpeg4")
    frames = smooth_frames(4, 31, 33)
    path = tmp_path / "fallback.mp4"
    write_video(path, frames, fps=25)
    video = read_video(path)
    assert video.frames.shape == (4, 32, 34, 3)
    assert video.fps == pytest.approx(25.0)
    assert np.abs(video.frames[:, :31, :33].astype(np.int16) - frames).mean() < 8


def test_bad_max_frames():
    with pytest.raises(FlowRVSError, match="max_frames"):
        read_video(np.zeros((2, 4, 4, 3), np.uint8), max_frames=0)


def test_write_mask_pngs(tmp_path):
    rng = np.random.default_rng(1)
    masks = rng.random((3, 9, 11)) > 0.5
    names = ["00010", "00002", "frame_b"]
    folder = tmp_path / "masks" / "prompt0"
    write_mask_pngs(folder, masks, names)
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{n}.png" for n in names)
    for mask, name in zip(masks, names):
        with Image.open(folder / f"{name}.png") as img:
            assert img.mode == "L"
            arr = np.asarray(img)
        assert set(np.unique(arr).tolist()) <= {0, 255}
        assert np.array_equal(arr == 255, mask)


def test_write_mask_pngs_rejects_mismatched_names(tmp_path):
    with pytest.raises(ValueError):
        write_mask_pngs(tmp_path, np.zeros((2, 4, 4), bool), ["a"])


def test_overlay_colours_differ_and_unmasked_pixels_unchanged():
    frames = smooth_frames(2, 40, 40)
    a = np.zeros((2, 40, 40), bool)
    b = np.zeros((2, 40, 40), bool)
    a[:, 5:15, 5:15] = True
    b[:, 25:35, 25:35] = True
    out = overlay_masks(frames, [a, b], alpha=0.5)
    assert out.shape == frames.shape and out.dtype == np.uint8
    outside = ~(a | b)
    assert np.array_equal(out[outside], frames[outside])
    assert np.array_equal(out[0, 5, 5], np.array(PALETTE[0], np.uint8))  # contour pixel
    assert np.array_equal(out[0, 25, 25], np.array(PALETTE[1], np.uint8))
    inner_a = out[0, 9, 9].astype(int)
    inner_b = out[0, 29, 29].astype(int)
    expect_a = np.rint(0.5 * frames[0, 9, 9] + 0.5 * np.array(PALETTE[0])).astype(int)
    assert np.abs(inner_a - expect_a).max() <= 1
    assert not np.array_equal(inner_a, inner_b)
    assert not np.array_equal(out[0, 9, 9], frames[0, 9, 9])
    assert np.array_equal(frames, smooth_frames(2, 40, 40))  # input untouched


def test_overlay_palette_and_no_masks():
    assert len(PALETTE) >= 10 and len(set(PALETTE)) == len(PALETTE)
    frames = distinct_frames(2, 6, 6)
    assert np.array_equal(overlay_masks(frames, []), frames)
    masks = [np.ones((2, 6, 6), bool) for _ in range(len(PALETTE) + 1)]
    out = overlay_masks(frames, masks, alpha=1.0)
    # the last prompt, number len(PALETTE), wraps round to colour 0 and is drawn on top
    assert np.array_equal(out[0, 3, 3], np.array(PALETTE[0], np.uint8))


def test_side_by_side():
    a = distinct_frames(3, 5, 4)
    b = distinct_frames(3, 5, 7)
    out = side_by_side(a, b)
    assert out.shape == (3, 5, 11, 3)
    assert np.array_equal(out[:, :, :4], a) and np.array_equal(out[:, :, 4:], b)
    with pytest.raises(ValueError):
        side_by_side(a, distinct_frames(2, 5, 4))


def test_write_video_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError):
        write_video(tmp_path / "x.mp4", np.zeros((2, 8, 8, 3), np.float32), fps=24)
    with pytest.raises(FlowRVSError, match="fps"):
        write_video(tmp_path / "x.mp4", np.zeros((2, 8, 8, 3), np.uint8), fps=0)
    assert not list(tmp_path.iterdir())


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _mkdir(path):
    path.mkdir()
    return path


def _mixed_sizes(folder):
    folder.mkdir()
    Image.new("RGB", (8, 8)).save(folder / "a.png")
    Image.new("RGB", (9, 8)).save(folder / "b.png")
    return folder


def test_atomic_files_get_normal_permissions(tmp_path):
    import os

    from flowrvs.io.atomic import write_json

    write_json(tmp_path / "a.json", {"x": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~mask


# ---- streamed reading ---------------------------------------------------------------------


def assert_stream_equals_read(source, **kwargs):
    stream = open_video(source, **kwargs)
    video = read_video(source, **kwargs)
    assert isinstance(stream, VideoStream)
    assert stream.names == video.names and len(stream) == len(video)
    assert stream.fps == video.fps
    assert (stream.height, stream.width) == video.frames.shape[1:3]
    items = list(stream)
    assert [name for name, _ in items] == video.names
    assert np.array_equal(np.stack([f for _, f in items]), video.frames)
    assert np.array_equal(stream.read().frames, video.frames)
    assert [name for name, _ in stream] == video.names  # a stream can be iterated again


def test_open_video_matches_read_video_mp4(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, smooth_frames(13, 32, 48), fps=30000 / 1001)
    assert_stream_equals_read(path)
    assert_stream_equals_read(path, max_frames=5)


def test_open_video_matches_read_video_rotated_mkv_without_frame_count(tmp_path):
    path = tmp_path / "rotated.mkv"  # Matroska announces no frame count: the packets are counted
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(24))
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(-90)
        for i, arr in enumerate(smooth_frames(6, 32, 64)):
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    assert_stream_equals_read(path)
    assert (open_video(path).height, open_video(path).width) == (64, 32)


def test_open_video_matches_read_video_folder_gif_image_array_list(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    rgb = smooth_frames(3, 24, 20)
    Image.fromarray(rgb[0]).save(folder / "f10.jpg", quality=95)
    Image.fromarray(rgb[1]).convert("RGBA").save(folder / "f2.png")
    Image.fromarray(rgb[2][..., 0]).save(folder / "f1.png")
    assert_stream_equals_read(folder)
    assert_stream_equals_read(folder, max_frames=2)
    gif = tmp_path / "anim.gif"
    write_gif(gif, distinct_frames(5, 20, 30), fps=10)
    assert_stream_equals_read(gif)
    assert_stream_equals_read(gif, max_frames=3)
    assert_stream_equals_read(folder / "f2.png")
    clip = distinct_frames(4, 8, 9)
    assert_stream_equals_read(clip)
    assert_stream_equals_read(clip[..., 0], max_frames=2)
    assert_stream_equals_read([Image.fromarray(f) for f in clip])
    assert_stream_equals_read(list(clip))
    assert_stream_equals_read(Video(clip, list("abcd"), 7.0), max_frames=3)


def _rotated_jpeg(path, arr):
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise
    Image.fromarray(arr).save(path, exif=exif)


def test_open_video_folder_checks_sizes_after_exif_rotation_on_opening(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    _rotated_jpeg(folder / "a.jpg", smooth_frames(1, 16, 24)[0])  # 24x16 once turned
    Image.fromarray(smooth_frames(1, 24, 16)[0]).save(folder / "b.png")
    assert_stream_equals_read(folder)
    Image.fromarray(smooth_frames(1, 16, 24)[0]).save(folder / "c.png")
    with pytest.raises(FlowRVSError, match="c.png"):
        open_video(folder)


@pytest.mark.parametrize("make_source, needle", BAD_SOURCES)
def test_open_video_errors_are_one_line_and_come_on_opening(tmp_path, make_source, needle):
    source = make_source(tmp_path)
    with pytest.raises(FlowRVSError) as info:
        open_video(source)
    assert "\n" not in str(info.value) and needle in str(info.value)


def test_open_video_truncated_file_raises_one_line_error_or_reads_what_it_announced(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, smooth_frames(24, 32, 32), fps=24)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    try:
        stream = open_video(path)
        frames = [f for _, f in stream]
    except FlowRVSError as exc:
        assert "clip.mp4" in str(exc) and "\n" not in str(exc)
    else:
        assert len(frames) == stream.num_frames


def peak_traced_bytes(fn) -> int:
    """Peak bytes NumPy and Python allocate while ``fn`` runs (tracemalloc counts NumPy's arrays)."""
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_open_video_holds_one_frame_at_a_time(tmp_path):
    h, w = 96, 128
    frame_bytes = h * w * 3
    path = tmp_path / "long.mp4"
    write_video(path, smooth_frames(40, h, w), fps=24)
    stream = open_video(path)

    def consume():
        for _, frame in stream:
            assert frame.shape == (h, w, 3)

    assert peak_traced_bytes(consume) < 4 * frame_bytes  # read_video would hold all 40


class CountingStream:
    """(name, frame) pairs of ``num_frames`` fresh frames whose pixels are the frame index."""

    def __init__(self, num_frames: int, h: int = 64, w: int = 64):
        self.num_frames, self.h, self.w = num_frames, h, w
        self.pulled = 0

    def __iter__(self):
        for i in range(self.num_frames):
            self.pulled += 1
            yield f"{i:05d}", np.full((self.h, self.w, 3), i % 256, dtype=np.uint8)


@pytest.mark.parametrize("num_frames,window,overlap", [(100, 17, 4), (40, 17, 4), (31, 9, 4), (12, 17, 4), (9, None, 0)])
def test_iter_windows_gives_each_windows_frames_reading_lazily(num_frames, window, overlap):
    plan = plan_windows(num_frames, window, overlap)
    stream = CountingStream(num_frames, 4, 4)
    got = []
    for win, frames in iter_windows(stream, plan):
        assert stream.pulled == win.stop  # never reads ahead of the window it builds
        assert frames.shape == (len(win), 4, 4, 3) and frames.dtype == np.uint8
        assert np.array_equal(frames[:, 0, 0, 0], np.arange(win.start, win.stop) % 256)
        got.append(win)
    assert got == plan


def test_iter_windows_holds_a_bounded_number_of_frames_whatever_the_length():
    h = w = 64
    frame_bytes = h * w * 3

    def peak_frames(num_frames: int) -> float:
        plan = plan_windows(num_frames, 17, 4)

        def consume():
            for win, frames in iter_windows(CountingStream(num_frames, h, w), plan):
                assert len(frames) == len(win)
                del frames

        return peak_traced_bytes(consume) / frame_bytes

    short, long = peak_frames(3 * 13 + 4), peak_frames(12 * 13 + 4)  # 3 and 12 windows
    assert long <= 17 + 4 + 2  # one window, the overlap it passes on, the frame being read
    assert long <= short + 0.5  # flat in the number of frames


def test_iter_windows_short_stream_is_an_error():
    with pytest.raises(FlowRVSError, match="ended after 20 frames"):
        list(iter_windows(CountingStream(20, 2, 2), plan_windows(30, 17, 4)))
