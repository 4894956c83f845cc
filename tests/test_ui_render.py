"""fer_demo.ui.render: a Prediction as display values (pure functions, Prediction-shaped fakes)."""

from __future__ import annotations

import json

import numpy as np

from ui_fakes import fake_face, fake_prediction

from fer_demo.model import EMOTIONS
from fer_demo.ui import render


# ------------------------------------------------------------------------------------------
# The helpers


def test_face_caption_is_label_and_percent():
    assert render.face_caption(0, fake_face("happy", 0.874)) == "face 1: happy 87%"
    assert render.face_caption(2, fake_face("sad", 0.5)) == "face 3: sad 50%"


def test_heatmap_legend_uses_the_heatmaps_own_colours():
    from fer_demo.pipeline import colorize

    html = render.heatmap_legend_html()
    low, high = colorize(np.array([[0.0, 1.0]], np.float32))[0]
    assert f"#{low[0]:02x}{low[1]:02x}{low[2]:02x}" in html and f"#{high[0]:02x}{high[1]:02x}{high[2]:02x}" in html
    assert "less evidence" in html and "more evidence" in html


def test_an_empty_heatmap_says_so_in_words():
    face = fake_face("happy", 0.9, target="sad", evidence=False)
    assert render.cam_caption(face, "sad") == "no evidence for sad in this face"
    summary = render.format_summary(fake_prediction([face]), 0.3, "gradcam", "sad", "none")
    assert "the heatmap finds no evidence for sad in this face" in summary
    seen = fake_face("happy", 0.9, target="happy")
    assert render.cam_caption(seen, "happy") == "why happy"


def test_a_close_call_names_both_classes_everywhere():
    face = fake_face("happy", 0.46, runner_up="surprise", p2=0.38)
    assert face.close_call and face.display_label == "happy or surprise"
    assert render.face_caption(0, face) == "face 1: happy 46% or surprise 38%"
    assert render.probability_table([face])["label"].tolist() == ["happy or surprise"]
    summary = render.format_summary(fake_prediction([face]), 0.3, "gradcam", None, "none")
    assert "**happy 46% or surprise 38%** (a close call: less than 15 percentage points apart)" in summary
    clear = fake_face("happy", 0.60, runner_up="surprise", p2=0.30)  # 30 points apart: one label
    assert not clear.close_call and render.face_caption(0, clear) == "face 1: happy 60%"


def test_probability_table_has_every_class_in_percent():
    faces = [fake_face("happy", 0.7), fake_face("fear", 0.4)]
    table = render.probability_table(faces)
    assert list(table.columns) == ["face", "label", *EMOTIONS]
    assert table["face"].tolist() == [1, 2] and table["label"].tolist() == ["happy", "fear"]
    np.testing.assert_allclose(table[list(EMOTIONS)].sum(axis=1), 100, atol=0.5)
    assert table.loc[0, "happy"] == 70.0
    assert render.probability_table([]).empty


def test_format_summary_counts_caps_and_time():
    one = render.format_summary(fake_prediction([fake_face("happy", 0.87)]), 1.234, "gradcam", None, "none")
    assert "**1 face found**" in one and "1.2 s" in one and "**happy 87%**" in one and "flip" not in one
    capped = render.format_summary(fake_prediction([fake_face()] * 2, found=5, max_faces=2), 2.0, None, None, "flip")
    assert "5 faces found" in capped and "limit 2" in capped and "3 not shown" in capped
    assert "explanation: off" in capped and "test-time augmentation: flip" in capped
    none = render.format_summary(fake_prediction([]), 0.3, "gradcam", None, "none")
    assert none.startswith("**No face found** (in 300 ms).")
    # Issue 22: a fast answer said "No face found (0.0 s)".
    assert "(in 40 ms)" in render.format_summary(fake_prediction([]), 0.04, None, None, "none")
    assert "in 1 ms." in render.format_summary(fake_prediction([fake_face()]), 0.0002, None, None, "none")


def test_errors_are_said_in_sentences():
    """Issue 22: "Could not analyse this photo. not an image (...)": the message starts a sentence."""
    html = render.error_html("not an image (or an unsupported format)", "Could not analyse this photo.")
    assert "Could not analyse this photo.</strong> Not an image (or an unsupported format)" in html
    assert render.error_html("") == '<div class="fer-error" role="alert"></div>'


def test_result_dict_is_json_and_records_settings():
    pred = fake_prediction([fake_face()])
    result = render.result_dict(pred, 0.51234, "gradcam", "sad", "flip")
    assert json.loads(json.dumps(result)) == result  # numpy scalars converted
    assert result["settings"] == {"cam": "gradcam", "target": "sad", "tta": "flip"}
    assert result["seconds"] == 0.512 and isinstance(result["faces"][0]["score"], float)
