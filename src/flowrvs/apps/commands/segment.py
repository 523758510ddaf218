"""`flowrvs segment VIDEO -p SENTENCE [-p ...] --model M --out DIR`: masks for your own video.

Writes, atomically (a temporary folder renamed into place at the end):
``DIR/<k>/<frame>.png`` (0/255, one folder per prompt k), ``DIR/masks.json`` (COCO RLE per
prompt per frame, with the prompt text) and ``DIR/overlay.mp4``.
"""

from __future__ import annotations

from flowrvs.errors import FlowRVSError
from flowrvs.apps.commands.common import add_model_args, add_window_args, load_pipeline, parse_size, window_options


def register(sub) -> None:
    parser = sub.add_parser("segment", help="segment the objects that sentences describe in a video")
    parser.add_argument("video", help="video file (mp4/avi/webm/gif...), image, or folder of frames")
    parser.add_argument("-p", "--prompt", action="append", required=True, dest="prompts", help="a sentence (repeatable)")
    parser.add_argument("--out", required=True, help="output folder (replaced when complete)")
    parser.add_argument("--size", default=None, help="HxW box frames are resized into (default: the model's, 480x832)")
    parser.add_argument("--batch-size", type=int, default=1, help="prompts per DiT pass")
    parser.add_argument("--no-overlay", action="store_true", help="skip overlay.mp4")
    add_window_args(parser)
    add_model_args(parser)
    parser.set_defaults(func=run)


def __getattr__(name: str):
    # write_segmentation moved to flowrvs.io.writer; still importable from here, loaded only when asked for
    if name == "write_segmentation":
        from flowrvs.io.writer import write_segmentation

        return write_segmentation
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run(args) -> int:
    from flowrvs.io.atomic import atomic_dir
    from flowrvs.models.text import check_prompts
    from flowrvs.io.read import open_video
    from flowrvs.io.writer import SegmentFolder, SegmentationWriter

    prompts = check_prompts(args.prompts)
    size = parse_size(args.size) if args.size else None
    if args.steps is not None and args.steps < 1:
        raise FlowRVSError(f"--steps must be at least 1, got {args.steps}")
    video = open_video(args.video)  # before loading the model: a bad video fails fast
    pipe = load_pipeline(args)
    stream = pipe.stream(video, prompts, num_inference_steps=args.steps, size=size, batch_size=args.batch_size,
                         mask_threshold=args.mask_threshold, **window_options(args))
    with atomic_dir(args.out) as tmp:
        with SegmentationWriter(SegmentFolder(tmp, str(args.video), stream.fps, overlay=not args.no_overlay), stream.prompts) as writer:
            for item in stream:
                writer.add(item.name, item.frame, item.masks)
    print(f"wrote {len(prompts)} mask track(s) of {len(stream)} frames to {args.out}")
    return 0
