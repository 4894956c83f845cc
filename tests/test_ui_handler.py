"""fer_demo.ui.handler: the Analyze request with the real predictor (shipped weights, real photos).

No server here (see test_client.py and test_browser.py): the handler is called directly.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pandas as pd
import pytest
from example_photos import EXAMPLES

from fer_demo.io import InvalidImageError, load_image
from fer_demo.model import EMOTIONS
from fer_demo.ui import handler as ui_handler
from fer_demo.ui.options import START_TEXT
from fer_demo.ui.render import sentence

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
def test_bad_files_give_one_clear_message(handler, tmp_path, content):
    """The API raises gr.Error with the message; the page says it once, in the summary, and empties
    every other output (no red badge on each panel, no old result underneath)."""
    bad = tmp_path / "upload.jpg"
    bad.write_bytes(content)
    with pytest.raises(gr.Error) as e:
        handler.api(str(bad))
    assert e.value.message == expected_message(bad)
    assert str(tmp_path) not in e.value.message  # no server paths in what the user sees
    out = ui_handler.Outputs(*handler(str(bad), "gradcam", "predicted", "none"))
    assert 'class="fer-error"' in out.summary and "Could not analyse this photo." in out.summary
    assert html.escape(sentence(expected_message(bad))) in out.summary  # as a sentence: "Not an image ..."
    assert (out.photo, out.cards, out.result, out.result_file) == ("", "", None, None) and out.table.empty


@pytest.mark.integration
def test_handler_takes_gradios_upload_payload(handler, tmp_path):
    """The events run with preprocess=False: the handler gets {"path": ..., ...}, not a decoded image."""
    payload = {"path": str(ASTRONAUT), "url": None, "size": None, "orig_name": "astronaut.jpg",
               "mime_type": None, "is_stream": False, "meta": {"_type": "gradio.FileData"}}
    assert handler.api(payload)["faces_found"] == 1
    bad = tmp_path / "upload.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(gr.Error) as e:
        handler.api({**payload, "path": str(bad)})
    assert e.value.message == expected_message(bad)
    with pytest.raises(gr.Error, match="Upload a photo"):
        handler.api({**payload, "path": None})


@pytest.mark.integration
def test_handler_errors_for_missing_input_and_bad_options(handler, tmp_path):
    with pytest.raises(gr.Error, match="Upload a photo"):
        handler.api(None)
    assert "Upload a photo, take one with the webcam or pick an example first." in ui_handler.Outputs(*handler(None)).summary
    with pytest.raises(gr.Error, match="no longer on the server"):
        handler.api(str(tmp_path / "gone.jpg"))
    assert "no longer on the server" in ui_handler.Outputs(*handler(str(tmp_path / "gone.jpg"))).summary
    for args in ((str(ASTRONAUT), "nonsense"), (str(ASTRONAUT), "gradcam", "joy"),
                 (str(ASTRONAUT), "gradcam", "predicted", "zoom")):
        with pytest.raises(gr.Error, match="Unknown"):
            handler.api(*args)
        assert "Unknown" in ui_handler.Outputs(*handler(*args)).summary


def test_a_cleared_photo_resets_the_page_and_clear_empties_everything(handler):
    """A new photo first clears every output (no earlier result stays up); no photo is the start page."""
    for out in (ui_handler.Outputs(*handler.clear()), ui_handler.Outputs(*handler.refresh(None, "gradcam"))):
        assert out.summary == START_TEXT and (out.photo, out.cards, out.result, out.result_file) == ("", "", None, None)
        assert list(out.table.columns) == ["face", "label", *EMOTIONS] and out.table.empty


@pytest.fixture
def private_handler(handler, tmp_path) -> ui_handler.AnalyzeHandler:
    """The real predictor behind a handler whose "Gradio upload folder" is tmp_path/cache."""
    return ui_handler.AnalyzeHandler(handler.predictor, upload_folder=tmp_path / "cache")


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
def test_handler_outputs_for_one_face(handler):
    out = ui_handler.Outputs(*handler(str(ASTRONAUT), "gradcam", "predicted", "none"))
    result = out.result
    assert result["faces_found"] == 1 and len(result["faces"]) == 1
    face = result["faces"][0]
    assert set(face["probabilities"]) == set(EMOTIONS)
    assert sum(face["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert face["label"] == max(face["probabilities"], key=face["probabilities"].get)
    assert result["settings"] == {"cam": "gradcam", "target": None, "tta": "none"}
    # The page: the numbered photo and the face's card, images inline (no file on the server).
    verdict = f"face 1: {face['label']} {face['confidence']:.0%}"
    assert out.photo.startswith('<figure class="fer-photo"') and f"({verdict})" in out.photo
    assert "data:image/jpeg;base64," in out.photo and "/file=" not in out.photo + out.cards
    assert out.cards.count('class="fer-card"') == 1 and verdict in out.cards
    assert f"gradcam: why {face['label']}" in out.cards and out.cards.count('class="fer-heat"') == 2
    assert isinstance(out.table, pd.DataFrame) and len(out.table) == 1
    assert "**1 face found**" in out.summary
    assert json.loads(Path(out.result_file).read_text()) == result


@pytest.mark.integration
def test_handler_target_class_and_no_cam(handler):
    result = ui_handler.Outputs(*handler(str(ASTRONAUT), "gradcam", "sad", "flip")).result
    assert result["faces"][0]["target"] == "sad" and result["settings"]["tta"] == "flip"
    out = ui_handler.Outputs(*handler(str(ASTRONAUT), "none", "predicted", "none"))
    assert "fer-heat" not in out.cards and out.cards.count("<figure>") == 1
    assert out.result["faces"][0]["target"] is None


@pytest.mark.integration
def test_handler_no_face_says_so_and_returns_empty_results(handler):
    import warnings

    with warnings.catch_warnings():  # said in the summary, not in a toast that follows the visitor around
        warnings.simplefilter("error")
        out = ui_handler.Outputs(*handler(str(CAT), request=SimpleNamespace(session_hash="s1")))
    assert out.result["faces"] == [] and out.result["faces_found"] == 0
    assert out.cards == "" and out.table.empty and "No face found" in out.summary
    assert 'alt="The photo: no face found"' in out.photo
    assert handler.api(str(CAT))["faces"] == []


@pytest.mark.integration
def test_an_empty_heatmap_is_named_not_drawn_as_an_answer(handler):
    """Issue 13: "why sad?" on a smiling face can give an all-zero Grad-CAM; the card says so in words.

    Which classes have no evidence depends on the weights, so every class is checked: the words
    match the map the predictor drew (the fakes in test_ui_cards.py pin down the empty case itself).
    """
    from fer_demo.ui.render import EMPTY_CAM_MAX

    for target in EMOTIONS:
        out = ui_handler.Outputs(*handler(str(ASTRONAUT), "gradcam", target, "none"))
        face = handler.predictor.analyze(str(ASTRONAUT), cam="gradcam", target=target).faces[0]
        empty = float(face.heatmap.max()) <= EMPTY_CAM_MAX
        assert (f"gradcam: no evidence for {target} in this face" in out.cards) == empty, target
        assert (f"gradcam: why {target}" in out.cards) == (not empty), target
        assert (f"no evidence for {target}" in out.summary) == empty, target
        assert out.cards.count('class="fer-heat"') == (0 if empty else 2), target


def test_a_tiff_gets_a_png_preview_with_the_same_pixels_and_is_deleted(tmp_path):
    """Issue 22, defect 3: browsers do not show TIFF; the Photo box gets a PNG of the same pixels."""
    import numpy as np
    from PIL import Image

    uploads = tmp_path / "uploads"
    (uploads / "abc").mkdir(parents=True)
    tiff = uploads / "abc" / "scan.tif"
    Image.open(ASTRONAUT).save(tiff, "TIFF")
    handler = ui_handler.AnalyzeHandler(predictor=None, result_files=ui_handler.ResultFiles(), upload_folder=uploads)
    *outputs, preview = handler.new_photo({"path": str(tiff)})
    assert tuple(outputs[3:]) == (START_TEXT, None, None)  # every output emptied first
    assert Path(preview).suffix == ".png" and not tiff.exists()
    assert np.array_equal(np.asarray(load_image(preview)), np.asarray(Image.open(ASTRONAUT).convert("RGB")))
    # Formats browsers show are left as they are (gr.skip()); so is a file that cannot be read.
    (uploads / "def").mkdir()
    jpeg = uploads / "def" / "astronaut.jpg"
    jpeg.write_bytes(ASTRONAUT.read_bytes())
    bad = uploads / "def" / "bad.tif"
    bad.write_bytes(b"II*\x00 not really")
    for kept in (jpeg, bad):
        assert not isinstance(handler.new_photo(str(kept))[-1], str) and kept.exists()
