"""fer_demo.ui.handler: the Analyze request with the real predictor (shipped weights, real photos).

No server here (see test_client.py and test_browser.py): the handler is called directly.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pandas as pd
import pytest
from example_photos import EXAMPLES

from fer_demo.io import InvalidImageError, load_image
from fer_demo.model import EMOTIONS
from fer_demo.ui import handler as ui_handler

ASTRONAUT = EXAMPLES / "astronaut.jpg"
CAT = EXAMPLES / "no_face_cat.jpg"


def test_result_files_are_written_then_pruned(tmp_path):
    files = ui_handler.ResultFiles(ttl_s=0)
    first = files.write({"a": 1})
    assert json.loads(first.read_text()) == {"a": 1} and first.name == "fer_result.json"
    second = files.write({"b": 2})  # prunes everything older than ttl (0 s): the first file
    assert not first.exists() and second.exists()



@pytest.fixture(scope="module")
def handler(release_weights) -> ui_handler.AnalyzeHandler:
    from fer_demo.pipeline import Predictor

    return ui_handler.AnalyzeHandler(Predictor(weights_path=release_weights))


def expected_message(path: Path) -> str:
    with pytest.raises(InvalidImageError) as e:
        load_image(path)
    return str(e.value).removeprefix(f"{path}: ")


@pytest.mark.integration
@pytest.mark.parametrize("content", [b"not an image at all", b"", b"\xff\xd8\xff\xe0 truncated jpeg"])
def test_handler_turns_bad_files_into_gr_error(handler, tmp_path, content):
    bad = tmp_path / "upload.jpg"
    bad.write_bytes(content)
    with pytest.raises(gr.Error) as e:
        handler(str(bad), "gradcam", "predicted", "none")
    assert e.value.message == expected_message(bad)
    assert str(tmp_path) not in e.value.message  # no server paths in what the user sees
    with pytest.raises(gr.Error):
        handler.api(str(bad))


@pytest.mark.integration
def test_handler_takes_gradios_upload_payload(handler, tmp_path):
    """The events run with preprocess=False: the handler gets {"path": ..., ...}, not a decoded image."""
    payload = {"path": str(ASTRONAUT), "url": None, "size": None, "orig_name": "astronaut.jpg",
               "mime_type": None, "is_stream": False, "meta": {"_type": "gradio.FileData"}}
    assert handler.api(payload)["faces_found"] == 1
    bad = tmp_path / "upload.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(gr.Error) as e:
        handler({**payload, "path": str(bad)})
    assert e.value.message == expected_message(bad)
    with pytest.raises(gr.Error, match="Upload a photo"):
        handler({**payload, "path": None})


@pytest.mark.integration
def test_handler_errors_for_missing_input_and_bad_options(handler, tmp_path):
    with pytest.raises(gr.Error, match="Upload a photo"):
        handler(None)
    with pytest.raises(gr.Error, match="no longer on the server"):
        handler(str(tmp_path / "gone.jpg"))
    for args in ((str(ASTRONAUT), "nonsense"), (str(ASTRONAUT), "gradcam", "joy"),
                 (str(ASTRONAUT), "gradcam", "predicted", "zoom")):
        with pytest.raises(gr.Error, match="Unknown"):
            handler(*args)


@pytest.fixture
def private_handler(handler, tmp_path) -> ui_handler.AnalyzeHandler:
    """The real predictor behind a handler whose "Gradio upload folder" is tmp_path/cache."""
    return ui_handler.AnalyzeHandler(handler.predictor, upload_folder=tmp_path / "cache", output_grace_s=0.2)


def fake_upload(folder: Path, photo: Path = ASTRONAUT, sub: str = "0123abcd") -> Path:
    path = folder / sub / photo.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(photo.read_bytes())
    return path


@pytest.mark.integration
def test_upload_is_deleted_once_read_and_rerun_from_memory(private_handler, tmp_path):
    upload = fake_upload(tmp_path / "cache")
    first = private_handler.api({"path": str(upload)}, request=SimpleNamespace(session_hash="s1"))
    assert not upload.exists() and not upload.parent.exists()  # nothing of it left on disk
    # The same upload again, other settings: served from memory.
    again = private_handler.api({"path": str(upload)}, "eigencam", "sad", request=SimpleNamespace(session_hash="s1"))
    assert again["faces"][0]["box"] == first["faces"][0]["box"] and again["faces"][0]["target"] == "sad"
    # Closing the tab (or Clear) forgets it.
    private_handler.forget_session(SimpleNamespace(session_hash="s1"))
    with pytest.raises(gr.Error, match="no longer on the server"):
        private_handler.api({"path": str(upload)}, request=SimpleNamespace(session_hash="s1"))


@pytest.mark.integration
def test_bad_uploads_are_deleted_too(private_handler, tmp_path):
    upload = tmp_path / "cache" / "ffff" / "notes.jpg"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(b"not an image")
    with pytest.raises(gr.Error, match="not an image"):
        private_handler.api({"path": str(upload)})
    assert not upload.exists()


@pytest.mark.integration
def test_example_photos_and_files_outside_the_upload_folder_are_never_deleted(handler, tmp_path):
    cache = tmp_path / "cache"
    example_copy = fake_upload(cache, sub="example")
    keeper = ui_handler.AnalyzeHandler(handler.predictor, upload_folder=cache, keep=lambda: {str(example_copy)})
    keeper.api(str(example_copy))
    keeper.api(str(ASTRONAUT))
    assert example_copy.is_file() and ASTRONAUT.is_file()


@pytest.mark.integration
def test_result_images_are_deleted_after_the_grace_period(private_handler, tmp_path):
    cache = tmp_path / "cache"
    outputs = [fake_upload(cache, sub=f"out{i}") for i in range(2)]
    payload = ({"image": {"path": str(outputs[0])}, "annotations": []}, [{"image": {"path": str(outputs[1])}}])
    private_handler.release_outputs(*payload)
    assert all(p.exists() for p in outputs)
    deadline = time.monotonic() + 10
    while any(p.exists() for p in outputs) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(p.exists() for p in outputs)


@pytest.mark.integration
def test_handler_outputs_for_one_face(handler):
    out = ui_handler.Outputs(*handler(str(ASTRONAUT), "gradcam", "predicted", "none"))
    result = out.result
    assert result["faces_found"] == 1 and len(result["faces"]) == 1
    face = result["faces"][0]
    assert set(face["probabilities"]) == set(EMOTIONS)
    assert sum(face["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert face["label"] == max(face["probabilities"], key=face["probabilities"].get)
    assert result["settings"] == {"cam": "gradcam", "target": None, "tta": "none"}
    # the page
    # A plain (photo, boxes) value, not a component update: a cached example then serves copies of
    # its own files instead of paths into the shared cache that later requests delete (issue 13).
    assert isinstance(out.annotated, tuple)
    image, boxes = out.annotated
    assert image.shape == (*result["image_size"][::-1], 3)
    caption = f"face 1: {face['label']} {face['confidence']:.0%}"
    assert [label for _, label in boxes] == [caption]
    x1, y1, x2, y2 = face["box"]
    assert boxes[0][0][y1, x1] == 1 and boxes[0][0][(y1 + y2) // 2, (x1 + x2) // 2] == 0
    assert [c for _, c in out.gallery] == ["face 1: input", f"face 1: why {face['label']}", "face 1: in the photo"]
    assert out.probabilities.constructor_args["value"] == face["probabilities"]
    assert isinstance(out.table, pd.DataFrame) and len(out.table) == 1
    assert "**1 face found**" in out.summary
    assert json.loads(Path(out.result_file).read_text()) == result
    assert out.gallery_owners["owners"] == [0, 0, 0]


@pytest.mark.integration
def test_handler_target_class_and_no_cam(handler):
    result = ui_handler.Outputs(*handler(str(ASTRONAUT), "gradcam", "sad", "flip")).result
    assert result["faces"][0]["target"] == "sad" and result["settings"]["tta"] == "flip"
    out = ui_handler.Outputs(*handler(str(ASTRONAUT), "none", "predicted", "none"))
    assert [c for _, c in out.gallery] == ["face 1: input"]
    assert out.result["faces"][0]["target"] is None


@pytest.mark.integration
def test_handler_no_face_warns_and_returns_empty_results(handler):
    import warnings
    from types import SimpleNamespace

    visitor = SimpleNamespace(session_hash="s1")  # a visitor's request: a toast (a UserWarning outside Gradio)
    with pytest.warns(UserWarning, match="No face found"):
        out = ui_handler.Outputs(*handler(str(CAT), request=visitor))
    with warnings.catch_warnings():  # no request (the examples cached at start-up): no warning printed
        warnings.simplefilter("error")
        assert ui_handler.Outputs(*handler(str(CAT))).result["faces"] == []
    assert out.result["faces"] == [] and out.result["faces_found"] == 0
    assert out.gallery == [] and out.table.empty and "No face found" in out.summary
    assert out.annotated[1] == []
    assert handler.api(str(CAT))["faces"] == []


@pytest.mark.integration
def test_gallery_click_shows_that_faces_probabilities(handler):
    out = ui_handler.Outputs(*handler(str(EXAMPLES / "group_three_faces.jpg")))
    state = out.gallery_owners
    assert len(state["faces"]) >= 2
    last = len(state["owners"]) - 1
    label = ui_handler.select_face(state, gr.SelectData(None, {"index": last, "value": None, "selected": True}))
    face = state["owners"][last]
    assert label.constructor_args["value"] == state["faces"][face]
    assert label.constructor_args["label"] == ui_handler.PROBS_TITLE.format(face=face + 1)


@pytest.mark.integration
def test_an_empty_heatmap_is_named_not_drawn_as_an_answer(handler):
    """Issue 13: "why sad?" on the smiling astronaut gives an all-zero Grad-CAM; say so."""
    out = ui_handler.Outputs(*handler(str(ASTRONAUT), "gradcam", "sad", "none"))
    assert [c for _, c in out.gallery][1] == "face 1: no evidence for sad in this face"
    assert "no evidence for sad" in out.summary
    happy = ui_handler.Outputs(*handler(str(ASTRONAUT), "gradcam", "happy", "none"))
    assert [c for _, c in happy.gallery][1] == "face 1: why happy"
