"""`flowrvs segment VIDEO -p SENTENCE [-p ...] --model M --out DIR`: masks for your own video.

Writes, atomically (a temporary folder renamed into place at the end):
``DIR/<k>/<frame>.png`` (0/255, one folder per prompt k), ``DIR/masks.json`` (COCO RLE per
prompt per frame, with the prompt text) and ``DIR/overlay.mp4``.
"""

from __future__ import annotations

from flowrvs.apps.commands.common import add_model_args, add_segment_options, load_pipeline, segment_options


def register(sub) -> None:
    parser = sub.add_parser("segment", help="segment the objects that sentences describe in a video")
    parser.add_argument("video", help="video file (mp4/avi/webm/gif...), image, or folder of frames")
    parser.add_argument("-p", "--prompt", action="append", required=True, dest="prompts", help="a sentence (repeatable)")
    parser.add_argument("--out", required=True, help="output folder (replaced when complete)")
    parser.add_argument("--no-overlay", action="store_true", help="skip overlay.mp4")
    add_segment_options(parser)
    add_model_args(parser, steps=False)
    parser.set_defaults(func=run)


def run(args) -> int:
    from flowrvs.io.atomic import atomic_dir
    from flowrvs.io.read import open_video
    from flowrvs.io.writer import SegmentFolder, SegmentationWriter
    from flowrvs.models.text import check_prompts
    from flowrvs.pipelines.streaming import stream_segmentation

    prompts = check_prompts(args.prompts)
    options = segment_options(args)
    video = open_video(args.video)  # before loading the model: a bad video fails fast
    pipe = load_pipeline(args)
    stream = stream_segmentation(pipe, video, prompts, options)
    with atomic_dir(args.out) as tmp:
        with SegmentationWriter(SegmentFolder(tmp, str(args.video), stream.fps, overlay=not args.no_overlay), stream.prompts) as writer:
            for item in stream:
                writer.add(item.name, item.frame, item.masks)
    print(f"wrote {len(prompts)} mask track(s) of {len(stream)} frames to {args.out}")
    return 0
