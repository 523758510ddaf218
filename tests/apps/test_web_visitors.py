"""`flowrvs web` with several visitors (issue 24, point 3): each gets exactly their own masks, a
visitor's files go when their page closes or expires, and the server serves nothing else.

Visitors are gradio_client clients; a page closing is its heartbeat connection closing, as a
browser's does.
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from flowrvs.io.masks import decode_rle
from helpers.net import free_port

SIZE = (32, 48)
SENTENCES = {"a": ["the red circle"], "b": ["the square that moves to the left", "the blue square"]}

pytestmark = pytest.mark.filterwarnings("ignore:.*no_silent_downcasting", "ignore:The copy keyword is deprecated")


@pytest.fixture(scope="module")
def site(tiny_pipe, tmp_path_factory):
    """The page on the tiny model, its Gradio cache in a fresh folder; two upload videos."""
    from flowrvs.apps.web import build_app, serve
    from flowrvs.data.synth.generate import generate_video
    from flowrvs.io.encode import write_video
    from flowrvs.options import SegmentOptions

    work = tmp_path_factory.mktemp("site")
    before = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(work / "gradio")  # read by Gradio when the page is built and on uploads
    app = build_app(tiny_pipe, options=SegmentOptions(size=SIZE), examples_dir=False)
    url = serve(app, port=free_port())
    videos = {}
    for seed, name in ((5, "a"), (9, "b")):
        videos[name] = work / "uploads" / name / "clip.mp4"  # the same file name for both visitors
        videos[name].parent.mkdir(parents=True)
        write_video(videos[name], generate_video(seed, frames=5 + 4 * (name == "b"), size=SIZE).frames, fps=8)
    yield url, app, work, videos
    app.close()
    if before is None:
        del os.environ["GRADIO_TEMP_DIR"]
    else:
        os.environ["GRADIO_TEMP_DIR"] = before


def _client(url, work):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=str(work / "client-downloads"))


def _submit(client, video, sentences):
    from gradio_client import handle_file

    return client.submit(handle_file(str(video)), "\n".join(sentences), 1, api_name="/run")


def _close_page(url, session_hash):
    """What a browser's tab closing does: its heartbeat connection ends."""
    import httpx

    with httpx.Client(timeout=30) as http, http.stream("GET", f"{url}gradio_api/heartbeat/{session_hash}") as r:
        assert r.status_code == 200
        next(r.iter_text())


def _wait_until(condition, seconds=30.0):
    end = time.monotonic() + seconds
    while not condition() and time.monotonic() < end:
        time.sleep(0.2)
    return condition()


def _check_masks(tiny_pipe, result, video, sentences):
    from flowrvs.io.read import read_video

    direct = tiny_pipe(read_video(video), sentences, size=SIZE)
    with zipfile.ZipFile(result[3]) as zf:
        index = json.loads(zf.read("masks.json"))
    assert [p["prompt"] for p in index["prompts"]] == sentences
    assert index["frame_names"] == direct.frame_names
    for k, masks in enumerate(direct.masks):
        for t, name in enumerate(direct.frame_names):
            assert np.array_equal(decode_rle(index["prompts"][k]["masks"][name]), masks[t]), (k, name)


def test_visitors_at_the_same_time_each_get_their_own_masks(site, tiny_pipe):
    url, app, work, videos = site
    clients = {name: _client(url, work) for name in videos}
    jobs = {name: _submit(clients[name], videos[name], SENTENCES[name]) for name in videos}  # both queued at once
    results = {name: job.result(timeout=300) for name, job in jobs.items()}
    for name in videos:
        assert results[name][4] == f"{len(SENTENCES[name])} sentence(s), {5 + 4 * (name == 'b')} frames."
        _check_masks(tiny_pipe, results[name], videos[name], SENTENCES[name])
        folder = app.flowrvs_visitor_dir(clients[name].session_hash)
        assert len(list(folder.iterdir())) == 1  # one result, in this visitor's own folder
    assert app.flowrvs_visitor_dir(clients["a"].session_hash) != app.flowrvs_visitor_dir(clients["b"].session_hash)


def test_a_visitors_files_go_when_their_page_closes_and_only_theirs(site):
    url, app, work, videos = site
    stay, leave = _client(url, work), _client(url, work)
    for client in (stay, leave):
        _submit(client, videos["a"], SENTENCES["a"]).result(timeout=300)
    leaving, staying = app.flowrvs_visitor_dir(leave.session_hash), app.flowrvs_visitor_dir(stay.session_hash)
    assert leaving.is_dir() and staying.is_dir()
    # the page serves the files where they are: no copy of a result elsewhere in Gradio's cache
    cache = work / "gradio"
    copies = [p for p in cache.rglob("*") if p.is_file() and p.suffix in (".png", ".zip")
              and app.flowrvs_result_root not in p.parents]
    assert copies == []
    _close_page(url, leave.session_hash)
    assert _wait_until(lambda: not leaving.exists())
    assert staying.is_dir() and any(staying.rglob("masks.zip"))


def test_result_folders_expire_an_hour_after_their_last_result(tmp_path):
    from flowrvs.apps.web import KEEP_RESULTS_S, remove_expired

    old, recent = tmp_path / "old", tmp_path / "recent"
    for folder in (old, recent):
        (folder / "r").mkdir(parents=True)
    stale = time.time() - KEEP_RESULTS_S - 60
    os.utime(old, (stale, stale))
    remove_expired(tmp_path)
    assert not old.exists() and recent.is_dir()
    remove_expired(tmp_path / "missing")  # no folder yet: nothing to do


def test_a_visitors_folder_is_a_keyed_hash_of_their_session(tmp_path):
    from flowrvs.apps.web import visitor_dir

    for session in ("../../etc", "/abs", "a\0b", "", None):
        folder = visitor_dir(tmp_path, session, b"k")
        assert folder.parent == tmp_path and len(folder.name) == 32 and folder.name.isalnum()
    assert visitor_dir(tmp_path, "s", b"one") != visitor_dir(tmp_path, "s", b"two")  # not guessable from the id


def test_the_server_serves_only_its_own_outputs(site):
    import httpx

    url, app, work, videos = site
    client = _client(url, work)
    _submit(client, videos["a"], SENTENCES["a"]).result(timeout=300)
    own = next(app.flowrvs_visitor_dir(client.session_hash).rglob("masks.zip"))
    assert httpx.get(f"{url}gradio_api/file={own}").status_code == 200  # the control: its own output is served
    secret = work / "secret.txt"  # in the system's temporary folder, beside the page's cache
    secret.write_text("not for visitors")
    refused = ["/etc/passwd", str(secret), str(Path(__file__).resolve()), str(videos["a"]),
               str(app.flowrvs_result_root), str(own.parent),  # folders: no listing
               f"{app.flowrvs_result_root}/../../secret.txt", f"{own.parent}/../../../../secret.txt"]
    for path in refused:
        response = httpx.get(f"{url}gradio_api/file={path}")
        assert response.status_code in (403, 404), (path, response.status_code)
        assert b"not for visitors" not in response.content and b"root:" not in response.content
