import json

import numpy as np
from PIL import Image

from flowrvs.data.synth.generate import DEFAULT_FRAMES, DEFAULT_SIZE
from flowrvs.apps.cli import main


def test_demo_writes_its_files_and_scores(tiny_pipe, tmp_path, capsys):
    from flowrvs.presets import build_pipeline
    from flowrvs.data.synth.vocabulary import VOCABULARY

    # a random tiny model with the synthetic vocabulary stands in for the shipped one
    model = tmp_path / "model"
    build_pipeline("tiny", words=["<pad>", "</s>", "<unk>", *VOCABULARY]).save_pretrained(model)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--seed", "5", "--model", str(model), "--prompts", "2"]) == 0
    summary = json.loads((out / "demo.json").read_text())
    assert len(summary["prompts"]) == 2 and 0 <= summary["J&F"] <= 1
    for name in ("masks.json", "overlay.mp4", "side_by_side.gif", "0", "1"):
        assert (out / name).exists()
    gif = Image.open(out / "side_by_side.gif")
    h, w = DEFAULT_SIZE
    assert gif.n_frames == DEFAULT_FRAMES and gif.size == (3 * w, h)
    assert "mean J&F" in capsys.readouterr().out
    # the score printed is the score of the written masks
    masks = np.stack([np.array(Image.open(out / "0" / f"{i:05d}.png")) > 0 for i in range(9)])
    from flowrvs.eval.metrics import score_expression
    from flowrvs.data.synth.generate import generate_video

    video = generate_video(5)
    from flowrvs.data.synth.grammar import pick_expressions

    j, f = score_expression(masks, video.union_mask(pick_expressions(video, 2)[0]))
    assert abs(summary["prompts"][0]["J&F"] - (j + f) / 2) < 1e-9


def test_shipped_model_runs_by_name(tmp_path, capsys):
    from flowrvs.loading.resolve import shipped_model_dir
    from flowrvs.pipelines.loader import load_pipeline

    assert shipped_model_dir("tiny-synthetic") is not None
    pipe = load_pipeline("tiny-synthetic", device="cpu")
    assert pipe.dvi and pipe.config.size == (96, 160)
    assert main(["demo", "--out", str(tmp_path / "d"), "--seed", "3", "--prompts", "1"]) == 0
    assert (tmp_path / "d" / "side_by_side.gif").is_file() and "mean J&F" in capsys.readouterr().out
