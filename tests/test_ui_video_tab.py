"""fer_demo.ui.video_tab: the Video tab's request, as the page gets it (no server)."""

from __future__ import annotations

import av
import pytest
from video_clips import astronaut_frames, write_clip

from fer_demo.pipeline import Predictor
from fer_demo.ui.handler import ResultFiles
from fer_demo.ui.video_tab import LIMITS_TEXT, VideoHandler


@pytest.fixture(scope="module")
def predictor(release_weights) -> Predictor:
    return Predictor(release_weights)


@pytest.fixture()
def handler(predictor, tmp_path) -> VideoHandler:
    (tmp_path / "uploads").mkdir()
    return VideoHandler(predictor, result_files=ResultFiles(), upload_folder=tmp_path / "uploads")


def upload(tmp_path, name: str = "clip.mp4"):
    """A clip where Gradio would put an upload: <upload folder>/<hash>/<name>."""
    folder = tmp_path / "uploads" / "0123abcd"
    folder.mkdir(parents=True, exist_ok=True)
    return write_clip(folder / name, astronaut_frames(10), fps=10)


def test_page_outputs_and_the_upload_is_deleted(handler, tmp_path):
    clip = upload(tmp_path)
    video, figure, files, summary = handler({"path": str(clip)}, 5, "none", progress=lambda *a, **k: None)
    assert not clip.exists() and not clip.parent.exists()  # the upload is gone once analysed
    with av.open(video) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in container.decode(video=0)) == 5
    assert [ax.get_title(loc="right") for ax in figure.axes] == ["face 1"]
    assert [f.rsplit("/", 1)[1] for f in files] == ["fer_video.csv", "fer_video.json"]
    assert summary.startswith("5 frames analysed at 5 frames/s") and "mostly happy" in summary


@pytest.mark.parametrize(("video", "fps", "cam", "message"), [
    (None, 5, "none", "Upload a video first."),
    ("notes", 5, "none", "not a video"),
    ("clip", 50, "none", "at most 10 frames/s"),
    ("clip", 5, "scorecam", "Unknown explanation method"),
])
def test_errors_are_said_in_the_summary(handler, tmp_path, video, fps, cam, message):
    if video == "notes":
        path = tmp_path / "uploads" / "notes.mp4"
        path.write_text("not a video\n")
        video = str(path)
    elif video == "clip":
        video = str(upload(tmp_path))
    outputs = handler(video, fps, cam, progress=lambda *a, **k: None)
    assert outputs[:3] == (None, None, None)
    assert 'class="fer-error"' in outputs[3] and message in outputs[3]
    if video is not None:
        assert not (tmp_path / video).exists()  # refused uploads are deleted too


def test_the_limits_text_names_the_limits():
    assert "100 MB" in LIMITS_TEXT and "60 s" in LIMITS_TEXT and "at most 10" in LIMITS_TEXT


def test_an_upload_browsers_cannot_play_is_said_to_have_no_preview(tmp_path):
    """Issue 22, defect 4: MPEG-4 Part 2 (OpenCV's "mp4v") has no preview; H.264 and VP9 have one."""
    from fer_demo.ui.video_tab import START_TEXT

    frames = astronaut_frames(4)
    mp4v = write_clip(tmp_path / "mp4v.mp4", frames, codec="mpeg4")
    said = VideoHandler.uploaded({"path": str(mp4v)})
    assert "No preview" in said and "MPEG-4 Part 2" in said and VideoHandler.uploaded(str(mp4v)) == said
    assert VideoHandler.uploaded(str(write_clip(tmp_path / "h264.mp4", frames))) == START_TEXT
    assert VideoHandler.uploaded(str(write_clip(tmp_path / "vp9.webm", frames, codec="libvpx-vp9"))) == START_TEXT
    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_text("not a video\n")
    assert VideoHandler.uploaded(str(not_a_video)) == START_TEXT  # the analysis says what is wrong
    assert VideoHandler.uploaded(None) == START_TEXT
