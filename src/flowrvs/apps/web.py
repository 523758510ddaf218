"""The Gradio page of ``flowrvs web``: upload a video, type sentences, get masks back.

:func:`build_app` lays out the page around a loaded pipeline; :func:`serve` starts it. The page
works offline: Gradio's analytics and version check are off, the theme's fonts are the ones
Gradio serves itself, and nothing on the page is loaded from another host.

One click of **Segment** runs :func:`segment_upload`: the video is streamed once through the
pipeline with all its sentences, window by window, and the files ``flowrvs segment`` writes go
into a fresh folder frame by frame (memory does not grow with the video's length); the page
shows the overlay video with a colour legend, one mask preview per sentence, and offers
``masks.zip`` (the per-sentence PNG folders and ``masks.json``).

Visitors: clicks run one at a time (the queue's ``concurrency_limit=1``), each into its
visitor's own folder (:func:`visitor_dir`, a keyed hash of the session: not a path the client
names, not one another visitor can guess). Those folders live in Gradio's cache folder, so the
page serves them as they are (no copies), and are removed when the visitor's page closes
(``Blocks.unload``) or an hour after their last result. Gradio serves only its cache folder
and the examples folder (``allowed_paths``).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import os
import secrets
import shutil
import tempfile
import time
import uuid
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from flowrvs.errors import FlowRVSError, first_line
from flowrvs.io.atomic import atomic_dir, atomic_path
from flowrvs.options import SegmentOptions

UPLOAD_TYPES = (".mp4", ".webm", ".gif", ".mov", ".avi", ".mkv")
ZIP_NAME = "masks.zip"
EXAMPLE_SEEDS = (2026, 7)  # synthetic videos offered as one-click examples
PREVIEW_FRAMES = 6  # frames shown per sentence in the mask preview
KEEP_RESULTS_S = 3600  # result folders older than this are removed when a new one is made


@dataclass(frozen=True)
class UploadLimits:
    """What one visitor may ask of the page, checked before any frame is segmented.

    The defaults admit a minute of 1080p at 60 fps: ``max_upload_mb`` bytes of upload (checked
    before decoding), ``max_frames`` frames and ``max_pixels`` pixels a frame (checked on the
    header and first frame).
    """

    max_upload_mb: float = 512.0
    max_frames: int = 3600
    max_pixels: int = 1920 * 1080

    def check_file(self, path: Path) -> None:
        size_mb = path.stat().st_size / 2**20
        if size_mb > self.max_upload_mb:
            raise FlowRVSError(f"{path.name} is {size_mb:.0f} MB; this page takes uploads up to {self.max_upload_mb:g} MB")

    def check_video(self, name: str, num_frames: int, height: int, width: int) -> None:
        if num_frames > self.max_frames:
            raise FlowRVSError(f"{name} has {num_frames} frames; this page takes up to {self.max_frames}")
        if height * width > self.max_pixels:
            raise FlowRVSError(f"{name} is {width}x{height}; this page takes frames of up to {self.max_pixels} pixels")


def default_steps(pipe) -> int:
    """The model's default number of Euler steps (``num_steps`` of its config; 1 when absent)."""
    config = getattr(pipe, "config", None)
    steps = getattr(config, "num_steps", None)
    if steps is None and isinstance(config, dict):
        steps = config.get("num_steps")
    return int(steps) if steps else 1


def parse_sentences(text: str | None) -> list[str]:
    """One sentence per line; blank lines are ignored. Raises :class:`FlowRVSError` when none is left."""
    from flowrvs.models.text import check_prompts

    sentences = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not sentences:
        raise FlowRVSError("type at least one sentence (one per line) in Sentences")
    try:
        return check_prompts(sentences)
    except FlowRVSError as err:  # a line of only quotes or backslashes cleans to nothing
        raise FlowRVSError(f"{err}: write a sentence that describes an object") from err


def parse_steps(value) -> int:
    """The Euler steps field as a positive int."""
    try:
        steps = float(value)
    except (TypeError, ValueError) as err:
        raise FlowRVSError(f"Euler steps must be a whole number, got {value!r}") from err
    if not steps.is_integer() or steps < 1:
        raise FlowRVSError(f"Euler steps must be a whole number of at least 1, got {value!r}")
    return int(steps)


def colour_hex(k: int) -> str:
    """The overlay colour of sentence ``k`` (:data:`flowrvs.io.overlay.PALETTE`) as ``#rrggbb``."""
    from flowrvs.io.overlay import PALETTE

    return "#%02x%02x%02x" % PALETTE[k % len(PALETTE)]


def legend_html(prompts: Sequence[str]) -> str:
    """An HTML legend: one colour swatch and the sentence per line, in overlay order."""
    rows = "".join(
        f'<li style="list-style:none;margin:2px 0"><span style="display:inline-block;width:1em;height:1em;'
        f'vertical-align:middle;margin-right:.5em;border-radius:2px;background:{colour_hex(k)}"></span>'
        f"{k}: {html.escape(p)}</li>"
        for k, p in enumerate(prompts)
    )
    return f'<ul class="flowrvs-legend" style="padding:0;margin:0">{rows}</ul>'


def mask_previews(frames: np.ndarray, masks: Sequence[np.ndarray], prompts: Sequence[str],
                  count: int = PREVIEW_FRAMES) -> list[tuple[np.ndarray, str]]:
    """Per sentence, ``count`` evenly spaced frames side by side with its mask in its colour.

    frames: ``(T, H, W, 3)`` uint8; masks: one ``(T, H, W)`` bool per sentence (or a
    ``(K, T, H, W)`` array). Returns ``(image (H, n*W, 3) uint8, caption)`` pairs, as a Gradio
    gallery takes them.
    """
    from flowrvs.io.overlay import overlay_masks

    picks = preview_picks(frames.shape[0], count)
    shown = frames[picks]
    previews = []
    for k, (mask, prompt) in enumerate(zip(masks, prompts)):
        # the sentence's own colour: earlier slots stay empty, so overlay_masks paints with PALETTE[k]
        layers = [np.zeros_like(mask[picks])] * k + [mask[picks]]
        strip = np.concatenate(list(overlay_masks(shown, layers)), axis=1)
        previews.append((strip, f"{k}: {prompt}"))
    return previews


def zip_masks(folder: Path, path: Path) -> Path:
    """Zip the mask PNG folders and ``masks.json`` of a ``segment`` output ``folder`` into ``path``."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "overlay.mp4")
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for p in files:
                zf.write(p, p.relative_to(folder).as_posix())
    return path


@dataclass
class WebResult:
    """What one click of Segment produced (paths inside its own result folder)."""

    folder: Path
    overlay: Path
    zip_path: Path
    prompts: list[str]
    previews: list[tuple[np.ndarray, str]]
    preview_files: list[tuple[str, str]]  # the previews as PNGs beside the masks
    legend: str
    num_frames: int


def remove_expired(root: Path, keep_s: float = KEEP_RESULTS_S) -> None:
    """Remove the folders under ``root`` not written to for ``keep_s`` seconds (a visitor's
    folder gets a new entry, so a newer mtime, with each result)."""
    now = time.time()
    for old in root.iterdir() if root.is_dir() else ():
        try:
            if old.is_dir() and now - old.stat().st_mtime > keep_s:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass


def new_result_dir(root: Path) -> Path:
    """A fresh folder with a random name under ``root``; result folders older than an hour are removed first."""
    root.mkdir(parents=True, exist_ok=True)
    remove_expired(root)
    path = root / uuid.uuid4().hex
    path.mkdir()
    return path


def visitor_dir(root: Path, session: str | None, key: bytes) -> Path:
    """The folder under ``root`` of one visitor's results: a keyed hash of their session id.

    The session id is the client's to choose, so it never becomes a path itself; the key is the
    server's secret, so the folder of a session cannot be guessed from its id.
    """
    return Path(root) / hmac.new(key, (session or "").encode(), hashlib.sha256).hexdigest()[:32]


def write_previews(previews: Sequence[tuple[np.ndarray, str]], folder: Path) -> list[tuple[str, str]]:
    """The preview strips as PNG files in ``folder`` (``(path, caption)`` pairs, as a gallery takes
    them): kept with the visitor's other files, so they go when those go."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for k, (strip, caption) in enumerate(previews):
        with atomic_path(folder / f"{k}.png") as tmp:
            Image.fromarray(strip).save(tmp, format="PNG")
        files.append((str(folder / f"{k}.png"), caption))
    return files


def preview_picks(num_frames: int, count: int = PREVIEW_FRAMES) -> list[int]:
    """The indices of up to ``count`` evenly spaced frames of a ``num_frames``-frame video."""
    return np.unique(np.linspace(0, num_frames - 1, min(count, num_frames)).round().astype(int)).tolist()


def _upload_error(err: FlowRVSError, video_path) -> FlowRVSError:
    """``err`` naming the upload, not the server's copy of it."""
    return FlowRVSError(str(err).replace(str(video_path), Path(str(video_path)).name))


def _stream_to_folder(stream, folder: Path, source: str, picks: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Write ``stream`` frame by frame into ``folder`` (the ``segment`` layout, atomically).

    Keeps only the preview frames ``picks``: returns their ``(P, H, W, 3)`` uint8 frames and
    ``(K, P, H, W)`` bool masks.
    """
    from flowrvs.io.writer import SegmentFolder, SegmentationWriter

    wanted = set(picks)
    shown, masks = [], []
    with atomic_dir(folder) as tmp:
        with SegmentationWriter(SegmentFolder(tmp, source, stream.fps, overlay=True), stream.prompts) as writer:
            for item in stream:
                writer.add(item.name, item.frame, item.masks)
                if item.index in wanted:
                    shown.append(item.frame.copy())
                    masks.append(item.masks.copy())  # not a view that keeps its window alive
    return np.stack(shown), np.stack(masks, axis=1)


def segment_upload(pipe, video_path, sentences_text: str | None, steps, result_root: Path,
                   options: SegmentOptions | None = None,
                   report: Callable[[float, str], None] | None = None,
                   limits: UploadLimits = UploadLimits()) -> WebResult:
    """Segment the sentences of ``sentences_text`` (one per line) in the video at ``video_path``.

    Streams the video through the pipeline window by window
    (:func:`flowrvs.pipelines.streaming.stream_segmentation`) and writes what ``flowrvs segment`` writes into a new folder under ``result_root`` as the
    frames come, keeping only the few preview frames, so memory does not grow with the video's
    length; then zips its masks into ``masks.zip`` beside it. options: the page's settings
    (size, window, overlap; default the model's), ``steps`` replacing their Euler steps.
    ``report(fraction, text)`` is told of progress. limits: what one visitor may upload
    (:class:`UploadLimits`). User mistakes raise :class:`FlowRVSError` before any model work (a
    file that turns out truncated, while streaming).
    """
    from flowrvs.io.read import open_video
    from flowrvs.pipelines.streaming import stream_segmentation

    report = report or (lambda fraction, text: None)
    if not video_path:
        raise FlowRVSError("upload a video first (mp4, webm or gif), or pick an example")
    if Path(str(video_path)).suffix.lower() not in UPLOAD_TYPES:
        raise FlowRVSError(f"{Path(str(video_path)).name} is not a video; upload one of {' '.join(UPLOAD_TYPES)}")
    prompts = parse_sentences(sentences_text)
    options = replace(options or SegmentOptions(), num_inference_steps=parse_steps(steps))
    limits.check_file(Path(str(video_path)))
    report(0.0, "reading the video")
    try:
        video = open_video(video_path)
    except FlowRVSError as err:
        raise _upload_error(err, video_path) from err
    limits.check_video(Path(str(video_path)).name, video.num_frames, video.height, video.width)
    pipe.set_progress_bar_config(disable=True)
    stream = stream_segmentation(pipe, video, prompts, options)
    report(0.1, f"segmenting {len(prompts)} sentence(s) in {len(stream)} frames")
    work = new_result_dir(Path(result_root))
    folder = work / "segmentation"
    try:
        shown, masks = _stream_to_folder(stream, folder, Path(str(video_path)).name, preview_picks(len(stream)))
    except FlowRVSError as err:
        raise _upload_error(err, video_path) from err
    report(0.9, "zipping the masks")
    zip_path = zip_masks(folder, work / ZIP_NAME)
    previews = mask_previews(shown, masks, stream.prompts, count=len(shown))
    report(1.0, "done")
    return WebResult(
        folder=folder,
        overlay=folder / "overlay.mp4",
        zip_path=zip_path,
        prompts=list(stream.prompts),
        previews=previews,
        preview_files=write_previews(previews, work / "previews"),
        legend=legend_html(stream.prompts),
        num_frames=len(stream),
    )


def example_videos(cache_dir: Path, seeds: Sequence[int] = EXAMPLE_SEEDS, sentences: int = 2) -> list[list[str]]:
    """``[video.mp4, "sentence\\nsentence"]`` rows of synthetic examples, generated once into ``cache_dir``.

    Each video comes from :func:`flowrvs.data.synth.generate_video` with a fixed seed, so the files
    are the same on every machine; a file already in the cache is reused.
    """
    from flowrvs.data.synth.grammar import pick_expressions
    from flowrvs.data.synth.generate import generate_video
    from flowrvs.io.encode import write_video

    rows = []
    for seed in seeds:
        path = Path(cache_dir) / f"synthetic-{seed}.mp4"
        text_path = path.with_suffix(".txt")
        if not (path.is_file() and text_path.is_file()):
            video = generate_video(seed)
            picked = pick_expressions(video, sentences)
            write_video(path, video.frames, fps=8)
            with atomic_path(text_path) as tmp:
                tmp.write_text("\n".join(video.expressions[i][0] for i in picked) + "\n")
        rows.append([str(path), text_path.read_text().strip()])
    return rows


def default_cache_dir() -> Path:
    """Where bundled examples are generated: ``web-examples/`` under :func:`flowrvs.runtime.cache.cache_root`."""
    from flowrvs.runtime.cache import cache_root

    return cache_root() / "web-examples"


def _import_gradio():
    # before gradio is imported: it reads these at import time
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import gradio as gr
    except ImportError as err:
        raise FlowRVSError("the web page needs Gradio: pip install 'flowrvs[web]'") from err
    return gr


def build_app(pipe, *, options: SegmentOptions | None = None, examples_dir: Path | None = None,
              result_root: Path | None = None, title: str = "flowrvs", limits: UploadLimits = UploadLimits()):
    """The page around a loaded :class:`~flowrvs.pipelines.pipeline_flowrvs.FlowRVSPipeline` (one request at a time).

    options: the page's settings (size, window, overlap, ...; default: the model's, and the
    method's window plan); the Euler steps field replaces their steps on each click.
    examples_dir: where the synthetic examples are generated (default :func:`default_cache_dir`;
    pass ``False`` for none). result_root: where each visitor's files go, one folder per visitor
    (:func:`visitor_dir`), removed when their page closes and an hour after their last result
    (default: ``flowrvs-web`` in Gradio's cache folder, which serves them as they are; from a
    folder elsewhere Gradio serves copies, which only its hourly cleanup removes). limits: what
    one visitor may upload (:class:`UploadLimits`). Returns a ``gr.Blocks``; start it with :func:`serve`.
    """
    gr = _import_gradio()
    steps_default = default_steps(pipe)
    key = secrets.token_bytes(32)  # names visitors' folders; never leaves this process

    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(KEEP_RESULTS_S, KEEP_RESULTS_S)) as app:
        root = Path(result_root or Path(app.GRADIO_CACHE) / "flowrvs-web")

        def run(video, sentences, steps, request: gr.Request, progress=gr.Progress()):
            remove_expired(root)  # visitors whose page closed without telling, an hour on
            try:
                out = segment_upload(pipe, video, sentences, steps, visitor_dir(root, request.session_hash, key),
                                     options=options, report=lambda f, text: progress(f, desc=text), limits=limits)
            except FlowRVSError as err:  # the user's doing: one line on the page (a bug keeps its traceback in the log)
                raise gr.Error(first_line(err), print_exception=False) from err
            status = f"{len(out.prompts)} sentence(s), {out.num_frames} frames."
            return str(out.overlay), out.legend, out.preview_files, str(out.zip_path), status

        def forget(request: gr.Request):
            """The page closed: its visitor's results go."""
            shutil.rmtree(visitor_dir(root, request.session_hash, key), ignore_errors=True)

        # Gradio hands the request to a parameter annotated gr.Request; under this module's
        # postponed annotations it would see only the string
        run.__annotations__["request"] = forget.__annotations__["request"] = gr.Request
        inputs, outputs, button = _layout(gr, title, steps_default, examples_dir)
        button.click(run, inputs=inputs, outputs=outputs, concurrency_limit=1)
        app.unload(forget)
    app.flowrvs_allowed_paths = [str(Path(examples_dir or default_cache_dir()))] if examples_dir is not False else []
    app.flowrvs_result_root = root
    app.flowrvs_visitor_dir = lambda session: visitor_dir(root, session, key)
    return app


def _layout(gr, title: str, steps_default: int, examples_dir):
    """The page's components: ``(inputs, outputs, button)`` of its Segment event."""
    gr.Markdown(f"## {html.escape(title)}: referring video object segmentation\n"
                "Upload a video, write one sentence per line describing an object, press **Segment**.")
    with gr.Row():
        with gr.Column():
            video = gr.File(label="Video", file_types=list(UPLOAD_TYPES), elem_id="video")
            sentences = gr.Textbox(label="Sentences", lines=4, elem_id="sentences",
                                   placeholder="the red circle\nthe square that moves to the left")
            steps = gr.Number(label="Euler steps", value=steps_default, precision=0, minimum=1, elem_id="steps")
            button = gr.Button("Segment", variant="primary", elem_id="segment")
            status = gr.Markdown(elem_id="status")
        with gr.Column():
            overlay = gr.Video(label="Overlay", elem_id="overlay", interactive=False, autoplay=True,
                               loop=True, buttons=["download"])
            legend = gr.HTML(elem_id="legend")
            previews = gr.Gallery(label="Masks per sentence", elem_id="previews", columns=1,
                                  object_fit="contain", buttons=["download", "fullscreen"])
            download = gr.File(label=ZIP_NAME, elem_id="masks-zip", interactive=False)
    if examples_dir is not False:
        rows = example_videos(Path(examples_dir or default_cache_dir()))
        gr.Examples(rows, inputs=[video, sentences], label="Synthetic examples (one click)")
    return [video, sentences, steps], [overlay, legend, previews, download, status], button


def serve(app, host: str = "127.0.0.1", port: int = 7860) -> str:
    """Start ``app`` (from :func:`build_app`) on ``host:port`` in the background; returns its URL.

    :func:`wait` then serves until interrupted; ``app.close()`` stops it.
    """
    gr = _import_gradio()
    try:
        _, url, _ = app.queue().launch(
            server_name=host,
            server_port=port,
            prevent_thread_lock=True,
            share=False,
            inbrowser=False,
            quiet=True,
            ssr_mode=False,
            mcp_server=False,
            pwa=False,
            footer_links=[],
            allowed_paths=getattr(app, "flowrvs_allowed_paths", []),
            theme=gr.themes.Default(),  # its fonts are served by Gradio itself (LocalFont)
        )
    except OSError as err:
        reason = f"port {port} is in use" if "empty port" in str(err) else first_line(err)
        raise FlowRVSError(f"cannot serve on {host}:{port}: {reason}") from err
    return url


def wait(app) -> None:
    """Serve ``app`` until the process is interrupted, then close it."""
    try:
        app.block_thread()
    finally:
        app.close()
