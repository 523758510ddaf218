"""`flowrvs web`: the Gradio page end to end in headless Chromium, and its helpers.

The browser is Debian's ``chromium`` (``.ci/run`` installs it), driven by Playwright; the test
is skipped only where neither the browser nor Playwright is there and ``CI`` is unset.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flowrvs.errors import FlowRVSError
from flowrvs.io.masks import decode_rle
from helpers.net import free_port

CHROMIUM = os.environ.get("FLOWRVS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SIZE = (32, 48)  # frames at the tiny model's working size: seconds, not minutes
SENTENCES = ["the red circle", "the square that moves to the left"]
LOCAL = ("http://127.0.0.1", "http://localhost", "data:", "blob:")

pytestmark = pytest.mark.filterwarnings("ignore:.*no_silent_downcasting", "ignore:The copy keyword is deprecated")


def _browser_ready() -> bool:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return Path(CHROMIUM).is_file()


needs_browser = pytest.mark.skipif(
    not _browser_ready() and not os.environ.get("CI"),
    reason=f"needs Playwright and {CHROMIUM} (.ci/run installs them; under CI this test never skips)",
)


@pytest.fixture(scope="module")
def video_path(tmp_path_factory):
    from flowrvs.data.synth.generate import generate_video
    from flowrvs.io.encode import write_video

    path = tmp_path_factory.mktemp("upload") / "clip.mp4"
    write_video(path, generate_video(5, frames=5, size=SIZE).frames, fps=8)
    return path


@pytest.fixture(scope="module")
def server(tiny_pipe, tmp_path_factory):
    from flowrvs.apps.web import build_app, serve
    from flowrvs.options import SegmentOptions

    work = tmp_path_factory.mktemp("web")
    app = build_app(tiny_pipe, options=SegmentOptions(size=SIZE), examples_dir=work / "examples", result_root=work / "results")
    url = serve(app, port=free_port())
    yield url, work
    app.close()


@needs_browser
@pytest.mark.slow
def test_browser_upload_segment_download(server, tiny_pipe, video_path, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from flowrvs.io.read import read_video

    url, work = server
    outside = []

    def only_local(route):
        if route.request.url.startswith(LOCAL):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(accept_downloads=True)
            page.route("**/*", only_local)
            page.goto(url)
            # the synthetic examples are on the page, generated into the cache at first use
            expect(page.get_by_text("synthetic-2026.mp4")).to_be_visible(timeout=20_000)
            example = (work / "examples" / "synthetic-7.txt").read_text().strip()
            page.get_by_text("synthetic-7.mp4").click()  # one click fills the video and its sentences
            expect(page.get_by_label("Sentences")).to_have_value(example)
            expect(page.locator("#video").get_by_role("cell", name="synthetic-7.mp4")).to_be_visible()
            page.get_by_label("Sentences").fill("")
            page.locator("#video").get_by_role("button", name="Clear").click()

            # a corrupt upload, then no sentence: a short message on the page each time, no trace
            broken = tmp_path / "broken.mp4"
            broken.write_bytes(b"not a video at all")
            page.locator("#video input[type=file]").set_input_files(str(broken))
            expect(page.locator("#video").get_by_role("cell", name="broken.mp4")).to_be_visible(timeout=20_000)
            page.get_by_label("Sentences").fill("the dog")
            page.get_by_role("button", name="Segment").click()
            expect(page.get_by_text("cannot decode video broken.mp4:")).to_be_visible(timeout=20_000)
            page.get_by_label("Sentences").fill("")
            page.locator("#video").get_by_role("button", name="Clear").click()
            page.locator("#video input[type=file]").set_input_files(str(video_path))
            expect(page.locator("#video").get_by_role("cell", name="clip.mp4")).to_be_visible(timeout=20_000)
            page.get_by_role("button", name="Segment").click()
            expect(page.get_by_text("type at least one sentence")).to_be_visible(timeout=20_000)
            assert "Traceback" not in page.content()

            page.get_by_label("Sentences").fill("\n".join(SENTENCES))
            page.get_by_role("button", name="Segment").click()
            page.locator("#overlay video[src]").wait_for(timeout=45_000)
            overlay = page.request.get(page.locator("#overlay video").get_attribute("src"))
            assert overlay.ok
            (tmp_path / "overlay.mp4").write_bytes(overlay.body())
            if os.environ.get("FLOWRVS_WEB_SCREENSHOT"):
                page.screenshot(path=os.environ["FLOWRVS_WEB_SCREENSHOT"], full_page=True)
            legend = page.locator("#legend")
            for sentence in SENTENCES:
                expect(legend.get_by_text(sentence)).to_be_visible()
            expect(page.locator("#previews img")).to_have_count(len(SENTENCES))
            with page.expect_download() as info:
                page.locator("#masks-zip a[download]").click()
            download = info.value
            assert download.suggested_filename == "masks.zip"
            zip_path = tmp_path / "masks.zip"
            download.save_as(zip_path)
        finally:
            browser.close()
    assert outside == []  # the page fetched nothing from the internet
    assert len(read_video(tmp_path / "overlay.mp4")) == 5

    direct = tiny_pipe(read_video(video_path), SENTENCES, size=SIZE)
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
        index = json.loads(zf.read("masks.json"))
        assert [p["prompt"] for p in index["prompts"]] == SENTENCES
        assert index["frame_names"] == direct.frame_names
        assert names == {"masks.json"} | {f"{k}/{n}.png" for k in range(2) for n in direct.frame_names}
        for k, expected in enumerate(direct.masks):
            for t, name in enumerate(direct.frame_names):
                png = np.array(Image.open(io.BytesIO(zf.read(f"{k}/{name}.png"))))
                assert set(np.unique(png)) <= {0, 255}
                assert np.array_equal(png > 0, expected[t]), (k, name)
                assert np.array_equal(decode_rle(index["prompts"][k]["masks"][name]), expected[t])


# ---- the page's helpers, without a browser --------------------------------------------------
def test_parse_sentences_and_steps():
    from flowrvs.apps.web import parse_sentences, parse_steps

    assert parse_sentences("  the dog \n\n the cat\n") == ["the dog", "the cat"]
    for empty in ("", "  \n \n", None):
        with pytest.raises(FlowRVSError, match="at least one sentence"):
            parse_sentences(empty)
    assert parse_steps(2.0) == 2 and parse_steps("3") == 3
    for bad in (0, 1.5, "x", None):
        with pytest.raises(FlowRVSError, match="Euler steps"):
            parse_steps(bad)


def test_default_steps_reads_config_attribute_or_dict():
    from types import SimpleNamespace

    from flowrvs.apps.web import default_steps

    assert default_steps(SimpleNamespace(config=SimpleNamespace(num_steps=4))) == 4
    assert default_steps(SimpleNamespace(config={"num_steps": 3})) == 3
    assert default_steps(SimpleNamespace(config=None)) == 1


def test_segment_upload_errors_before_model_work(tmp_path):
    from flowrvs.apps.web import segment_upload

    class NoModel:
        def __call__(self, *args, **kwargs):
            raise AssertionError("the model must not run")

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    text = tmp_path / "notes.txt"
    text.write_text("hi")
    cases = [(None, "one", "upload a video"), (str(text), "one", "not a video"),
             (str(bad), "the dog", "cannot decode"), (str(bad), "\n", "at least one sentence")]
    for video, sentences, message in cases:
        with pytest.raises(FlowRVSError, match=message):
            segment_upload(NoModel(), video, sentences, 1, tmp_path / "results")


def test_legend_escapes_and_previews_use_sentence_colours():
    from flowrvs.io.overlay import PALETTE
    from flowrvs.apps.web import legend_html, mask_previews

    html = legend_html(["a <b>", "c"])
    assert "&lt;b&gt;" in html and "<b>" not in html and "#%02x%02x%02x" % PALETTE[1] in html
    frames = np.zeros((3, 8, 10, 3), np.uint8)
    masks = [np.zeros((3, 8, 10), bool), np.ones((3, 8, 10), bool)]
    previews = mask_previews(frames, masks, ["x", "y"])
    assert [caption for _, caption in previews] == ["0: x", "1: y"]
    assert previews[0][0].shape == (8, 30, 3) and not previews[0][0].any()
    assert tuple(previews[1][0][4, 4]) == tuple(round(0.5 * c) for c in PALETTE[1])


def test_web_command_user_errors_are_one_line(server, capsys):
    from flowrvs.apps.cli import main

    assert main(["web", "--model", "no-such-model", "--no-examples"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["web", "--port", "0"]) == 2
    assert "--port must be between 1 and 65535" in capsys.readouterr().err
    port = int(server[0].rstrip("/").rsplit(":", 1)[1])  # taken by the page under test
    assert main(["web", "--model", "tiny-synthetic", "--device", "cpu", "--port", str(port), "--no-examples"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"flowrvs web: error: cannot serve on 127.0.0.1:{port}: port {port} is in use"


def test_web_window_flags_are_checked_before_the_model_loads(capsys):
    from flowrvs.apps.cli import main

    assert main(["web", "--model", "no-such-model", "--window", "6", "--no-examples"]) == 2
    assert "--window" in capsys.readouterr().err


def test_segment_upload_streams_windows_and_keeps_the_preview_frames_masks(tiny_pipe, tmp_path):
    from flowrvs.apps.web import PREVIEW_FRAMES, mask_previews, preview_picks, segment_upload
    from flowrvs.data.synth.generate import generate_video
    from flowrvs.io.encode import write_video
    from flowrvs.io.read import read_video
    from flowrvs.options import SegmentOptions

    path = tmp_path / "long.mp4"
    write_video(path, generate_video(6, frames=13, size=SIZE).frames, fps=8)
    out = segment_upload(tiny_pipe, str(path), "\n".join(SENTENCES), 1, tmp_path / "results",
                         options=SegmentOptions(size=SIZE, window=5, overlap=1))
    video = read_video(path)
    direct = tiny_pipe(video, SENTENCES, size=SIZE, window=5, overlap=1)
    assert out.num_frames == 13 and len(read_video(out.overlay)) == 13
    picks = preview_picks(13)
    assert len(picks) == PREVIEW_FRAMES
    expected = mask_previews(video.frames[picks], [m[picks] for m in direct.masks], SENTENCES, count=len(picks))
    for (got, caption), (want, want_caption) in zip(out.previews, expected, strict=True):
        assert caption == want_caption and np.array_equal(got, want)
    index = json.loads((out.folder / "masks.json").read_text())
    for k, masks in enumerate(direct.masks):
        for t, name in enumerate(direct.frame_names):
            assert np.array_equal(decode_rle(index["prompts"][k]["masks"][name]), masks[t])


def test_upload_limits_refuse_before_any_model_work(tmp_path):
    """Issue 24: an upload over the byte, frame or pixel limit is refused in one line, the model untouched."""
    from flowrvs.apps.web import UploadLimits, segment_upload
    from flowrvs.io.encode import write_video

    class NoModel:
        def __getattr__(self, name):
            raise AssertionError(f"the model was used ({name})")

    path = tmp_path / "clip.mp4"
    write_video(path, np.zeros((6, 32, 48, 3), dtype=np.uint8), fps=6)
    cases = [(UploadLimits(max_upload_mb=1e-6), r"clip\.mp4 is 0 MB; this page takes uploads up to 1e-06 MB"),
             (UploadLimits(max_frames=5), r"clip\.mp4 has 6 frames; this page takes up to 5"),
             (UploadLimits(max_pixels=32 * 47), r"clip\.mp4 is 48x32; this page takes frames of up to 1504 pixels")]
    for limits, message in cases:
        with pytest.raises(FlowRVSError, match=message):
            segment_upload(NoModel(), str(path), "a dog", 1, tmp_path / "results", limits=limits)
    assert not (tmp_path / "results").exists()
    UploadLimits().check_video("a minute of 1080p", 3600, 1080, 1920)  # the defaults admit it
