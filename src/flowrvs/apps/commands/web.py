"""`flowrvs web [--model M] [--host 127.0.0.1] [--port 7860]`: the Gradio page.

Loads the model once, then serves the page of :mod:`flowrvs.apps.web` until interrupted. Offline:
nothing on the page is fetched from the internet.
"""

from __future__ import annotations

from flowrvs.apps.commands.common import parse_size

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
    parser.add_argument("--no-examples", action="store_true", help="do not offer the synthetic example videos")
    parser.set_defaults(func=run)


def run(args) -> int:
    from flowrvs.errors import FlowRVSError
    from flowrvs.apps.web import build_app, serve, wait
    from flowrvs.apps.commands.common import load_pipeline

    if not 0 < args.port < 65536:
        raise FlowRVSError(f"--port must be between 1 and 65535, got {args.port}")
    size = parse_size(args.size) if args.size else None
    pipe = load_pipeline(args)
    app = build_app(pipe, size=size, examples_dir=False if args.no_examples else None)
    url = serve(app, host=args.host, port=args.port)
    print(f"flowrvs web: model {args.model}; open {url} (Ctrl+C stops)", flush=True)
    wait(app)
    return 0
