"""fer_demo.ui.render: a Prediction as display values (pure functions, Prediction-shaped fakes)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from fer_demo import limits
from fer_demo.calibration import is_close_call
from fer_demo.model import EMOTIONS
from fer_demo.pipeline import FaceResult
from fer_demo.ui import render


# ------------------------------------------------------------------------------------------
# Fakes: Prediction-shaped objects


def fake_face(label: str = "happy", p: float = 0.87, box=(10, 20, 60, 80), target: str | None = None,
              cam: bool = True, runner_up: str | None = None, p2: float | None = None,
              evidence: bool = True) -> FaceResult:
    """A real ``FaceResult`` with made-up values; ``runner_up``/``p2`` make a close call."""
    second = runner_up or next(e for e in EMOTIONS if e != label)
    p2 = p2 if p2 is not None else (1 - p) / (len(EMOTIONS) - 1)
    rest = (1 - p - p2) / (len(EMOTIONS) - 2)
    probs = {e: (p if e == label else p2 if e == second else rest) for e in EMOTIONS}
    overlay = np.full((192, 192, 3), 100, np.uint8) if cam else None
    region = np.full((box[3] - box[1], box[2] - box[0], 3), 50, np.uint8) if cam else None
    return FaceResult(box=box, landmarks=np.zeros((5, 2), np.float32), detection_score=0.99,
                      aligned=np.zeros((48, 48), np.uint8), aligned_rgb=np.zeros((192, 192, 3), np.uint8),
                      probabilities=probs, label=label, confidence=p, runner_up=second,
                      close_call=is_close_call(p, p2), target=(target or label) if cam else None,
                      heatmap=np.full((48, 48), 0.5 if evidence else 0.0, np.float32) if cam else None,
                      overlay=overlay,
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
    items, _ = render.gallery_items(fake_prediction([face]), "gradcam")
    assert [c for _, c in items][1] == "face 1: no evidence for sad in this face"
    summary = render.format_summary(fake_prediction([face]), 0.3, "gradcam", "sad", "none")
    assert "the heatmap finds no evidence for sad in this face" in summary
    seen = fake_face("happy", 0.9, target="happy")
    assert [c for _, c in render.gallery_items(fake_prediction([seen]), "gradcam")[0]][1] == "face 1: why happy"


def test_a_close_call_names_both_classes_everywhere():
    face = fake_face("happy", 0.46, runner_up="surprise", p2=0.38)
    assert face.close_call and face.display_label == "happy or surprise"
    assert render.face_caption(0, face) == "face 1: happy 46% or surprise 38%"
    assert render.probability_table([face])["label"].tolist() == ["happy or surprise"]
    summary = render.format_summary(fake_prediction([face]), 0.3, "gradcam", None, "none")
    assert "**happy 46% or surprise 38%** (a close call: less than 15 percentage points apart)" in summary
    clear = fake_face("happy", 0.60, runner_up="surprise", p2=0.30)  # 30 points apart: one label
    assert not clear.close_call and render.face_caption(0, clear) == "face 1: happy 60%"


@pytest.mark.parametrize("box, expected", [
    ((10.4, 20.6, 50.5, 70.2), (10, 21, 50, 70)),   # rounded to integers
    ((-5, -3, 170, 130), (0, 0, 160, 120)),          # clipped to the 160x120 image
    ((30, 30, 30, 30), (30, 30, 31, 31)),            # never empty
    ((200, 10, 300, 50), (159, 10, 160, 50)),        # entirely outside: a 1-px sliver at the edge
])
def test_clip_box_integer_and_inside(box, expected):
    x1, y1, x2, y2 = render.clip_box(box, 160, 120)
    assert (x1, y1, x2, y2) == expected
    assert all(isinstance(v, int) for v in (x1, y1, x2, y2))
    assert 0 <= x1 < x2 <= 160 and 0 <= y1 < y2 <= 120


def test_box_outline_mask_frames_the_face_without_covering_it():
    mask = render.box_outline_mask((20, 10, 100, 90), 120, 160)
    assert mask.shape == (120, 160) and mask.dtype == np.float32
    assert mask[10, 50] == 1 and mask[89, 50] == 1 and mask[50, 20] == 1 and mask[50, 99] == 1  # the frame
    assert mask[50, 60] == 0  # the face inside stays uncovered
    assert mask[5, 50] == 0 and mask[50, 110] == 0  # nothing outside the box
    assert set(np.unique(mask)) == {0.0, 1.0}


def test_annotations_caption_and_mask_per_face():
    pred = fake_prediction([fake_face("happy", 0.9, (10, 10, 50, 60)), fake_face("happy", 0.6, (80, 20, 130, 90))])
    image, items = render.annotations(pred)
    assert image is pred.image
    # One caption per face, so two "happy" faces get two legend entries (and two colours).
    assert [label for _, label in items] == ["face 1: happy 90%", "face 2: happy 60%"]
    assert all(mask.shape == image.shape[:2] for mask, _ in items)


def test_annotations_shrink_a_huge_photo_and_its_boxes():
    pred = fake_prediction([fake_face("happy", 0.9, (1000, 500, 2000, 1500))])
    pred.image = np.zeros((3000, 4000, 3), np.uint8)
    image, items = render.annotations(pred, max_side=1000)
    assert image.shape == (750, 1000, 3)
    mask = items[0][0]
    assert mask.shape == (750, 1000)
    ys, xs = np.nonzero(mask)
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (250, 125, 500, 375)


def test_gallery_items_per_face_and_owner_index():
    pred = fake_prediction([fake_face("happy"), fake_face("sad", target="angry")])
    items, owners = render.gallery_items(pred, "gradcam")
    assert owners == [0, 0, 0, 1, 1, 1]
    captions = [c for _, c in items]
    assert captions == ["face 1: input", "face 1: why happy", "face 1: in the photo",
                        "face 2: input", "face 2: why angry", "face 2: in the photo"]
    assert items[0][0].size == (render.GALLERY_SIDE, render.GALLERY_SIDE)  # the 48x48 input, enlarged
    items, owners = render.gallery_items(fake_prediction([fake_face(cam=False)]), None)
    assert owners == [0] and [c for _, c in items] == ["face 1: input"]


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
    assert none.startswith("**No face found**")


def test_result_dict_is_json_and_records_settings():
    pred = fake_prediction([fake_face()])
    result = render.result_dict(pred, 0.51234, "gradcam", "sad", "flip")
    assert json.loads(json.dumps(result)) == result  # numpy scalars converted
    assert result["settings"] == {"cam": "gradcam", "target": "sad", "tta": "flip"}
    assert result["seconds"] == 0.512 and isinstance(result["faces"][0]["score"], float)
