"""app.py: the page built (not launched) with a fake predictor, launch settings, example photos.

Served for real in test_client.py (gradio_client) and test_browser.py (Chromium).
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest
from example_photos import EXAMPLES

import app
from fer_demo import limits

ASTRONAUT = EXAMPLES / "astronaut.jpg"
CAT = EXAMPLES / "no_face_cat.jpg"


def test_launch_settings(monkeypatch):
    monkeypatch.delenv("PORT", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    s = app.launch_settings()
    assert s["server_name"] == "0.0.0.0" and s["server_port"] == 7860
    assert s["max_file_size"] == max(limits.MAX_UPLOAD_BYTES, limits.VIDEO_MAX_UPLOAD_BYTES)  # videos are larger
    assert not s.get("share") and s["allowed_paths"] == []
    assert s["theme"] is app.THEME and s["css"] == app.CSS
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7000")
    assert app.launch_settings()["server_port"] == 7000
    monkeypatch.setenv("PORT", "8080")  # PORT wins
    assert app.launch_settings()["server_port"] == 8080


def test_example_captions_tell_the_photos_apart():
    captions = [app.example_caption(p) for p in app.example_photos()]
    assert len(set(captions)) == len(captions)
    assert app.example_caption("examples/grace_hopper_exif_rotated.jpg") == "rotated"
    assert app.example_caption("x/my_photo.png") == "my photo"


def test_example_photos_lists_images_astronaut_first():
    photos = app.example_photos()
    assert photos and Path(photos[0]).name == "astronaut.jpg"
    assert all(Path(p).suffix.lower() in app.IMAGE_SUFFIXES for p in photos)
    assert str(CAT) in photos



class NeverCalled:
    def analyze(self, *args, **kwargs):
        raise AssertionError("build_demo must not run the predictor")


@pytest.mark.parametrize("which", ["release", "bare_release"])
def test_build_demo_returns_blocks_without_launching(which, request):
    weights = request.getfixturevalue(which)
    demo = app.build_demo(NeverCalled(), weights=weights, examples=[str(ASTRONAUT)])
    assert isinstance(demo, gr.Blocks) and not demo.is_running
    config = demo.get_config_file()
    apis = {d.get("api_name"): d for d in config["dependencies"]}
    assert apis["predict"]["api_visibility"] == "public"
    assert apis["analyze"]["api_visibility"] == "private"
    fns = {fn.api_name: fn for fn in demo.fns.values()}
    assert not fns["predict"].preprocess and not fns["analyze"].preprocess  # the app decodes uploads itself
    assert demo.delete_cache == app.DELETE_CACHE
    ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
    assert {"photo", "analyze-button", "annotated", "face-cards", "cam-opacity", "examples", "summary"} <= ids
    # Every way a photo or an option changes re-runs the analysis (a new photo clears first). The
    # photo's input (what the visitor did), never its change: Gradio fires change twice when an upload
    # replaces a photo (issue 22: every photo after the first was analysed twice).
    triggers = {(t[0], t[1]) for d in config["dependencies"] for t in d["targets"]}
    by_id = {c["id"]: c.get("props", {}).get("elem_id") for c in config["components"]}
    named = {(by_id.get(i), event) for i, event in triggers}
    assert {("photo", "input"), ("cam", "change"), ("target", "change"), ("tta", "change"),
            ("examples", "select"), ("cam-opacity", "change")} <= named
    assert ("photo", "change") not in named
    assert ("confusion-matrix" in ids) == (which == "release")
    assert ("per-class-table" in ids) == (which == "release")
