"""`flowrvs web [--model M] [--host 127.0.0.1] [--port 7860]`: the Gradio page.

Loads the model once, then serves the page of :mod:`flowrvs.apps.web` until interrupted. Offline:
nothing on the page is fetched from the internet.
"""

from __future__ import annotations


DEFAULT_MODEL = "tiny-synthetic"


def register(sub) -> None:
    parser = sub.add_parser("web", help="a web page (Gradio): upload a video, type sentences, download masks")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"model folder, or the name of a shipped model (default: {DEFAULT_MODEL})")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                        help="weights dtype (default: float32 on cpu, bfloat16 on cuda)")
    parser.add_argument("--cpu-offload", action="store_true",
                        help="keep parts on the CPU and move each to the GPU only while it runs")
    parser.add_argument("--size", default=None, help="HxW box frames are resized into (default: the model's)")
    parser.add_argument("--window", type=int, default=None,
                        help="frames per window of a long video, 4k+1 (default: the method's plan, 17 for FlowRVS, its clips for REM); 0 = the whole video in one pass")
    parser.add_argument("--overlap", type=int, default=None,
                        help="frames neighbouring windows share, their logits cross-faded (default: 4)")
    parser.add_argument("--max-upload-mb", type=float, default=512.0,
                        help="largest upload a visitor may send, in MB (default 512: a minute of 1080p)")
    parser.add_argument("--max-frames", type=int, default=3600,
                        help="most frames of an uploaded video (default 3600: a minute at 60 fps)")
    parser.add_argument("--max-pixels", type=int, default=1920 * 1080,
                        help="most pixels of an uploaded video's frame (default 1920x1080)")
    parser.add_argument("--no-examples", action="store_true", help="do not offer the synthetic example videos")
    # the page's Euler steps field sets the steps; the rest of SegmentOptions is the model's
    parser.set_defaults(func=run, steps=None, mask_threshold=None, batch_size=1)


def run(args) -> int:
    from flowrvs.errors import FlowRVSError
    import sys

    from flowrvs.apps.web import UploadLimits, build_app, serve, wait
    from flowrvs.apps.commands.common import load_pipeline, segment_options

    if not 0 < args.port < 65536:
        raise FlowRVSError(f"--port must be between 1 and 65535, got {args.port}")
    if args.max_upload_mb <= 0 or args.max_frames < 1 or args.max_pixels < 1:
        raise FlowRVSError("--max-upload-mb, --max-frames and --max-pixels must be positive")
    limits = UploadLimits(args.max_upload_mb, args.max_frames, args.max_pixels)
    options = segment_options(args)  # validated once, before the model is loaded
    if args.host in ("0.0.0.0", "::", ""):
        print(f"flowrvs web: warning: listening on every interface ({args.host or '*'}): anyone who can reach "
              "this machine can use the page", file=sys.stderr)
    pipe = load_pipeline(args)
    app = build_app(pipe, options=options, examples_dir=False if args.no_examples else None, limits=limits)
    url = serve(app, host=args.host, port=args.port)
    print(f"flowrvs web: model {args.model}; open {url} (Ctrl+C stops)", flush=True)
    wait(app)
    return 0
