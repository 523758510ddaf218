"""Tests for flowrvs.io.read: every source read as a stream, and read whole."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from flowrvs.errors import FlowRVSError
from flowrvs.io.encode import write_gif, write_video
from flowrvs.io.read import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, Video, VideoStream, open_video, read_video
from helpers.videos import distinct_frames, peak_traced_bytes, smooth_frames


def test_extension_constants():
    assert VIDEO_EXTENSIONS == (".mp4", ".avi", ".webm", ".mov", ".mkv", ".gif")
    assert IMAGE_EXTENSIONS == (".jpg", ".jpeg", ".png", ".bmp", ".webp")




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




def test_bad_max_frames():
    with pytest.raises(FlowRVSError, match="max_frames"):
        read_video(np.zeros((2, 4, 4, 3), np.uint8), max_frames=0)




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




def test_an_open_stream_is_taken_as_it_is_or_cut():
    clip = distinct_frames(4, 8, 9)
    stream = open_video(clip)
    assert open_video(stream) is stream
    assert open_video(stream, max_frames=2).names == ["00000", "00001"]
    assert np.array_equal(read_video(stream, max_frames=3).frames, clip[:3])


def test_errors_keep_the_library_error_as_their_cause(tmp_path):
    with pytest.raises(FlowRVSError) as info:
        open_video(_write(tmp_path / "fake.jpg", b"not a jpeg"))
    assert info.value.__cause__ is not None
    with pytest.raises(FlowRVSError) as info:
        open_video(_write(tmp_path / "fake.mp4", b"this is just text, not a video\n" * 20))
    assert isinstance(info.value.__cause__, av.FFmpegError)
