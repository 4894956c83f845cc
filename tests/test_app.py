"""The app's own code: formatting helpers, the model page builders, the request handler.

No server here (see test_client.py and test_browser.py): the handler is called directly, the
model page is built from a generated release folder (``app_helpers.make_release``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pandas as pd
import pytest
from app_helpers import fake_metrics, make_release

import app
from fer_demo import limits
from fer_demo.io import InvalidImageError, load_image
from fer_demo.model import EMOTIONS

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights" / "fer_vgg19.safetensors"
EXAMPLES = ROOT / "examples"
ASTRONAUT = EXAMPLES / "astronaut.jpg"
CAT = EXAMPLES / "no_face_cat.jpg"


# ------------------------------------------------------------------------------------------
# Fakes: Prediction-shaped objects for the pure formatting helpers


def fake_face(label: str = "happy", p: float = 0.87, box=(10, 20, 60, 80), target: str | None = None,
              cam: bool = True) -> SimpleNamespace:
    rest = (1 - p) / (len(EMOTIONS) - 1)
    probs = {e: (p if e == label else rest) for e in EMOTIONS}
    overlay = np.full((192, 192, 3), 100, np.uint8) if cam else None
    region = np.full((box[3] - box[1], box[2] - box[0], 3), 50, np.uint8) if cam else None
    return SimpleNamespace(box=box, landmarks=np.zeros((5, 2), np.float32), detection_score=0.99,
                           aligned=np.zeros((48, 48), np.uint8), aligned_rgb=np.zeros((192, 192, 3), np.uint8),
                           probabilities=probs, label=label, confidence=p, target=(target or label) if cam else None,
                           heatmap=np.zeros((48, 48), np.float32) if cam else None, overlay=overlay,
                           region_overlay=region)


def fake_prediction(faces: list, found: int | None = None, max_faces: int = limits.MAX_FACES) -> SimpleNamespace:
    found = len(faces) if found is None else found

    def to_dict():
        return {"faces": [{"box": list(f.box), "label": f.label, "probabilities": f.probabilities,
                           "score": np.float32(f.detection_score)} for f in faces],
                "faces_found": found, "truncated": found > max_faces, "max_faces": max_faces}

    return SimpleNamespace(faces=faces, image=np.zeros((120, 160, 3), np.uint8), faces_found=found,
                           truncated=found > len(faces), max_faces=max_faces, to_dict=to_dict)


# ------------------------------------------------------------------------------------------
# Formatting helpers


def test_face_caption_is_label_and_percent():
    assert app.face_caption(0, fake_face("happy", 0.874)) == "face 1: happy 87%"
    assert app.face_caption(2, fake_face("sad", 0.5)) == "face 3: sad 50%"


@pytest.mark.parametrize("box, expected", [
    ((10.4, 20.6, 50.5, 70.2), (10, 21, 50, 70)),   # rounded to integers
    ((-5, -3, 170, 130), (0, 0, 160, 120)),          # clipped to the 160x120 image
    ((30, 30, 30, 30), (30, 30, 31, 31)),            # never empty
    ((200, 10, 300, 50), (159, 10, 160, 50)),        # entirely outside: a 1-px sliver at the edge
])
def test_clip_box_integer_and_inside(box, expected):
    x1, y1, x2, y2 = app.clip_box(box, 160, 120)
    assert (x1, y1, x2, y2) == expected
    assert all(isinstance(v, int) for v in (x1, y1, x2, y2))
    assert 0 <= x1 < x2 <= 160 and 0 <= y1 < y2 <= 120


def test_box_outline_mask_frames_the_face_without_covering_it():
    mask = app.box_outline_mask((20, 10, 100, 90), 120, 160)
    assert mask.shape == (120, 160) and mask.dtype == np.float32
    assert mask[10, 50] == 1 and mask[89, 50] == 1 and mask[50, 20] == 1 and mask[50, 99] == 1  # the frame
    assert mask[50, 60] == 0  # the face inside stays uncovered
    assert mask[5, 50] == 0 and mask[50, 110] == 0  # nothing outside the box
    assert set(np.unique(mask)) == {0.0, 1.0}


def test_annotations_label_colour_and_mask_per_face():
    pred = fake_prediction([fake_face("happy", 0.9, (10, 10, 50, 60)), fake_face("sad", 0.6, (80, 20, 130, 90))])
    image, items, colors = app.annotations(pred)
    assert image is pred.image
    assert [label for _, label in items] == ["face 1: happy 90%", "face 2: sad 60%"]
    assert colors == {"face 1: happy 90%": app.EMOTION_COLORS["happy"], "face 2: sad 60%": app.EMOTION_COLORS["sad"]}
    assert all(mask.shape == image.shape[:2] for mask, _ in items)


def test_annotations_shrink_a_huge_photo_and_its_boxes():
    pred = fake_prediction([fake_face("happy", 0.9, (1000, 500, 2000, 1500))])
    pred.image = np.zeros((3000, 4000, 3), np.uint8)
    image, items, _ = app.annotations(pred, max_side=1000)
    assert image.shape == (750, 1000, 3)
    mask = items[0][0]
    assert mask.shape == (750, 1000)
    ys, xs = np.nonzero(mask)
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (250, 125, 500, 375)


def test_gallery_items_per_face_and_owner_index():
    pred = fake_prediction([fake_face("happy"), fake_face("sad", target="angry")])
    items, owners = app.gallery_items(pred, "gradcam")
    assert owners == [0, 0, 0, 1, 1, 1]
    captions = [c for _, c in items]
    assert captions == ["face 1: input", "face 1: why happy", "face 1: in the photo",
                        "face 2: input", "face 2: why angry", "face 2: in the photo"]
    assert items[0][0].size == (app.GALLERY_SIDE, app.GALLERY_SIDE)  # the 48x48 input, enlarged
    items, owners = app.gallery_items(fake_prediction([fake_face(cam=False)]), None)
    assert owners == [0] and [c for _, c in items] == ["face 1: input"]


def test_probability_table_has_every_class_in_percent():
    faces = [fake_face("happy", 0.7), fake_face("fear", 0.4)]
    table = app.probability_table(faces)
    assert list(table.columns) == ["face", "label", *EMOTIONS]
    assert table["face"].tolist() == [1, 2] and table["label"].tolist() == ["happy", "fear"]
    np.testing.assert_allclose(table[list(EMOTIONS)].sum(axis=1), 100, atol=0.5)
    assert table.loc[0, "happy"] == 70.0
    assert app.probability_table([]).empty


def test_format_summary_counts_caps_and_time():
    one = app.format_summary(fake_prediction([fake_face("happy", 0.87)]), 1.234, "gradcam", None, "none")
    assert "**1 face found**" in one and "1.2 s" in one and "**happy** 87%" in one and "flip" not in one
    capped = app.format_summary(fake_prediction([fake_face()] * 2, found=5, max_faces=2), 2.0, None, None, "flip")
    assert "5 faces found" in capped and "limit 2" in capped and "3 not shown" in capped
    assert "explanation: off" in capped and "test-time augmentation: flip" in capped
    none = app.format_summary(fake_prediction([]), 0.3, "gradcam", None, "none")
    assert none.startswith("**No face found**")


def test_result_dict_is_json_and_records_settings():
    pred = fake_prediction([fake_face()])
    result = app.result_dict(pred, 0.51234, "gradcam", "sad", "flip")
    assert json.loads(json.dumps(result)) == result  # numpy scalars converted
    assert result["settings"] == {"cam": "gradcam", "target": "sad", "tta": "flip"}
    assert result["seconds"] == 0.512 and isinstance(result["faces"][0]["score"], float)


def test_result_files_are_written_then_pruned(tmp_path):
    files = app.ResultFiles(ttl_s=0)
    first = files.write({"a": 1})
    assert json.loads(first.read_text()) == {"a": 1} and first.name == "fer_result.json"
    second = files.write({"b": 2})  # prunes everything older than ttl (0 s): the first file
    assert not first.exists() and second.exists()


def test_launch_settings(monkeypatch):
    monkeypatch.delenv("PORT", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    s = app.launch_settings()
    assert s["server_name"] == "0.0.0.0" and s["server_port"] == 7860
    assert s["max_file_size"] == limits.MAX_UPLOAD_BYTES
    assert not s.get("share") and s["allowed_paths"] == []
    assert s["theme"] is app.THEME and s["css"] == app.CSS
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7000")
    assert app.launch_settings()["server_port"] == 7000
    monkeypatch.setenv("PORT", "8080")  # PORT wins
    assert app.launch_settings()["server_port"] == 8080


def test_example_photos_lists_images_astronaut_first():
    photos = app.example_photos()
    assert photos and Path(photos[0]).name == "astronaut.jpg"
    assert all(Path(p).suffix.lower() in app.IMAGE_SUFFIXES for p in photos)
    assert str(CAT) in photos


# ------------------------------------------------------------------------------------------
# Model page


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return make_release(tmp_path_factory.mktemp("release"), WEIGHTS)


@pytest.fixture(scope="module")
def bare_release(tmp_path_factory) -> Path:
    """Weights and card only: what weights/ holds before a training run is exported."""
    return make_release(tmp_path_factory.mktemp("bare"), WEIGHTS, metrics=False, plots=False)


def test_model_info_reads_every_release_file(release):
    info = app.ModelInfo.load(release)
    assert info.metrics == json.loads((release.parent / "metrics.json").read_text())
    assert info.card["architecture"] == "vgg19_bn" and "training" in info.card
    assert info.confusion_png == release.parent / "confusion.png"
    assert info.curves_png == release.parent / "curves.png"
    assert list(info.history["epoch"]) == [1, 2, 3]
    assert info.problems == []


def test_model_info_without_metrics_says_so(bare_release):
    info = app.ModelInfo.load(bare_release)
    assert info.metrics is None and info.confusion_png is None and info.history is None
    text = app.metrics_markdown(info)
    assert "No evaluation results" in text and "metrics.json" in text


def test_model_info_falls_back_to_the_cards_metrics(tmp_path, release):
    weights = make_release(tmp_path, WEIGHTS, plots=False)
    (tmp_path / "metrics.json").unlink()
    info = app.ModelInfo.load(weights)
    assert info.metrics is not None and info.metrics["accuracy"] == fake_metrics()["accuracy"]


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"accuracy": 0.5}'])
def test_model_info_survives_a_broken_metrics_file(tmp_path, content):
    weights = make_release(tmp_path, WEIGHTS, plots=False)
    card = json.loads(weights.with_suffix(".json").read_text())
    card.pop("metrics")
    weights.with_suffix(".json").write_text(json.dumps(card))
    (tmp_path / "metrics.json").write_text(content)
    info = app.ModelInfo.load(weights)
    assert info.metrics is None and info.problems
    assert "Problem:" in app.metrics_markdown(info)


def test_metrics_markdown_states_accuracy_f1_split_and_size(release):
    m = fake_metrics()
    text = app.metrics_markdown(app.ModelInfo.load(release))
    assert f"Accuracy {m['accuracy']:.1%}" in text and f"macro-F1 {m['macro_f1']:.3f}" in text
    assert "fer2013/test" in text and "split `test`" in text and f"{m['num_images']:,}" in text
    assert f"{m['accuracy_tta_flip']:.1%}" in text and "epoch 3 of" in text
    majority = max(c["support"] for c in m["per_class"].values()) / m["num_images"]
    assert f"{majority:.1%}" in text


def test_per_class_table_matches_metrics():
    m = fake_metrics()
    table = app.per_class_table(m)
    assert list(table.columns) == ["class", "precision", "recall", "F1", "support"]
    assert table["class"].tolist() == list(EMOTIONS)
    for _, row in table.iterrows():
        c = m["per_class"][row["class"]]
        assert row["support"] == c["support"]
        assert row["recall"] == pytest.approx(c["recall"], abs=5e-4)
        assert row["F1"] == pytest.approx(c["f1"], abs=5e-4)
    assert table["support"].sum() == m["num_images"]
    assert app.per_class_table(None).empty


def test_confusion_figure_is_row_normalised():
    m = fake_metrics()
    fig = app.confusion_figure(m)
    shown = np.asarray(fig.axes[0].images[0].get_array())
    np.testing.assert_allclose(shown.sum(axis=1), 1.0)
    cm = np.asarray(m["confusion_matrix"], float)
    np.testing.assert_allclose(shown, cm / cm.sum(axis=1, keepdims=True))


def test_training_and_model_tables_come_from_the_card(release):
    card = json.loads(release.with_suffix(".json").read_text())
    training = app.training_table(card)
    assert training["setting"].tolist() == list(card["training"])
    values = dict(zip(training["setting"], training["value"]))
    assert values["epochs"] == str(card["training"]["epochs"]) and values["lr"] == f"{card['training']['lr']:g}"
    assert json.loads(values["class_counts"]) == dict(zip(EMOTIONS, card["training"]["class_counts"]))
    model = app.model_table(card)
    assert {"architecture", "input_size", "cam_target_layer"} <= set(model["property"])
    assert "training" not in set(model["property"]) and "metrics" not in set(model["property"])
    assert app.training_table(None).empty and app.model_table(None).empty


def test_about_quotes_the_measured_accuracy(release, bare_release):
    m = fake_metrics()
    assert f"right on {m['accuracy']:.0%}" in app.about_markdown(app.ModelInfo.load(release))
    assert "accuracy is unknown" in app.about_markdown(app.ModelInfo.load(bare_release))
    about = app.about_markdown(app.ModelInfo.load(release), url="user/space")
    assert 'Client("user/space")' in about and 'api_name="/predict"' in about
    assert "not a felt emotion" in about and "Do not use it to make or support decisions about people" in about


@pytest.mark.integration
def test_the_shipped_release_fills_the_model_page(release_weights):
    """weights/ as released: metrics.json, card and plots are there and in the expected format."""
    info = app.ModelInfo.load(release_weights)
    if info.metrics is None:
        message = f"no evaluation results next to {release_weights} (python -m train export writes them)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    assert info.problems == []
    m = info.metrics
    assert f"Accuracy {m['accuracy']:.1%}" in app.metrics_markdown(info)
    table = app.per_class_table(m)
    assert table["class"].tolist() == list(EMOTIONS) and table["support"].sum() == m["num_images"]
    assert np.asarray(m["confusion_matrix"]).sum() == m["num_images"]
    assert info.confusion_png is not None
    assert not app.training_table(info.card).empty


# ------------------------------------------------------------------------------------------
# The whole app, built but not launched


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
    assert {"photo", "analyze-button", "annotated", "probabilities", "faces-gallery", "summary"} <= ids
    assert ("confusion-matrix" in ids) == (which == "release")
    assert ("per-class-table" in ids) == (which == "release")


# ------------------------------------------------------------------------------------------
# The request handler with the real predictor (shipped weights, real photos)


@pytest.fixture(scope="module")
def handler(release_weights) -> app.AnalyzeHandler:
    from fer_demo.pipeline import Predictor

    return app.AnalyzeHandler(Predictor(weights_path=release_weights))


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
def private_handler(handler, tmp_path) -> app.AnalyzeHandler:
    """The real predictor behind a handler whose "Gradio upload folder" is tmp_path/cache."""
    return app.AnalyzeHandler(handler.predictor, upload_folder=tmp_path / "cache", output_grace_s=0.2)


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
    keeper = app.AnalyzeHandler(handler.predictor, upload_folder=cache, keep=lambda: {str(example_copy)})
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
    out = app.Outputs(*handler(str(ASTRONAUT), "gradcam", "predicted", "none"))
    result = out.result
    assert result["faces_found"] == 1 and len(result["faces"]) == 1
    face = result["faces"][0]
    assert set(face["probabilities"]) == set(EMOTIONS)
    assert sum(face["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert face["label"] == max(face["probabilities"], key=face["probabilities"].get)
    assert result["settings"] == {"cam": "gradcam", "target": None, "tta": "none"}
    # the page
    assert isinstance(out.annotated, gr.AnnotatedImage)
    image, boxes = out.annotated.constructor_args["value"]
    assert image.shape == (*result["image_size"][::-1], 3)
    caption = f"face 1: {face['label']} {face['confidence']:.0%}"
    assert [label for _, label in boxes] == [caption]
    assert out.annotated.constructor_args["color_map"] == {caption: app.EMOTION_COLORS[face["label"]]}
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
    result = app.Outputs(*handler(str(ASTRONAUT), "gradcam", "sad", "flip")).result
    assert result["faces"][0]["target"] == "sad" and result["settings"]["tta"] == "flip"
    out = app.Outputs(*handler(str(ASTRONAUT), "none", "predicted", "none"))
    assert [c for _, c in out.gallery] == ["face 1: input"]
    assert out.result["faces"][0]["target"] is None


@pytest.mark.integration
def test_handler_no_face_warns_and_returns_empty_results(handler):
    with pytest.warns(UserWarning, match="No face found"):
        out = app.Outputs(*handler(str(CAT)))
    assert out.result["faces"] == [] and out.result["faces_found"] == 0
    assert out.gallery == [] and out.table.empty and "No face found" in out.summary
    assert out.annotated.constructor_args["value"][1] == []
    assert handler.api(str(CAT))["faces"] == []


@pytest.mark.integration
def test_gallery_click_shows_that_faces_probabilities(handler):
    out = app.Outputs(*handler(str(EXAMPLES / "group_three_faces.jpg")))
    state = out.gallery_owners
    assert len(state["faces"]) >= 2
    last = len(state["owners"]) - 1
    label = app.select_face(state, gr.SelectData(None, {"index": last, "value": None, "selected": True}))
    face = state["owners"][last]
    assert label.constructor_args["value"] == state["faces"][face]
    assert label.constructor_args["label"] == app.PROBS_TITLE.format(face=face + 1)
