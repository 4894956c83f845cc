"""fer_demo.ui.cards: the numbered photo and one card per face (pure functions, Prediction-shaped fakes)."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
from PIL import Image
from ui_fakes import fake_face, fake_prediction

from fer_demo.model import EMOTIONS
from fer_demo.ui import cards


def decode(uri: str) -> Image.Image:
    head, data = uri.split(",", 1)
    assert head in ("data:image/png;base64", "data:image/jpeg;base64"), head
    return Image.open(io.BytesIO(base64.b64decode(data)))


def images(html: str) -> list[tuple[str, str, str]]:
    """(class, src, alt) of every <img> in ``html``."""
    found = []
    for tag in re.findall(r"<img[^>]*>", html):
        cls = re.search(r'class="([^"]*)"', tag)
        found.append((cls.group(1) if cls else "", re.search(r'src="([^"]*)"', tag).group(1),
                      re.search(r'alt="([^"]*)"', tag).group(1)))
    return found


def captions(html: str) -> list[str]:
    return re.findall(r"<figcaption>(.*?)</figcaption>", html)


def hex_rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def test_data_uri_round_trips_a_png_exactly():
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    assert np.array_equal(np.asarray(decode(cards.data_uri(rgb))), rgb)
    assert decode(cards.data_uri(rgb, "JPEG")).size == (30, 20)


def test_faces_get_different_colours_even_with_the_same_label():
    assert len(set(cards.FACE_COLOURS)) == len(cards.FACE_COLOURS)
    assert cards.face_colour(0) != cards.face_colour(1)
    assert cards.face_colour(len(cards.FACE_COLOURS)) == cards.face_colour(0)  # cycles past seven faces


def test_numbered_photo_draws_each_box_in_its_faces_colour():
    pred = fake_prediction([fake_face("happy", box=(10, 30, 60, 100)), fake_face("happy", box=(90, 30, 150, 100))])
    photo = np.asarray(cards.numbered_photo(pred))
    assert photo.shape == (120, 160, 3)
    for i, (x1, y1, x2, y2) in enumerate(f.box for f in pred.faces):
        colour = hex_rgb(cards.face_colour(i))
        assert tuple(photo[(y1 + y2) // 2, x1]) == colour  # the left edge of the box
        assert tuple(photo[y2 - 1, (x1 + x2) // 2]) == colour  # the bottom edge
        assert tuple(photo[(y1 + y2) // 2, (x1 + x2) // 2]) == (0, 0, 0)  # the face itself uncovered
        assert tuple(photo[y1 - 5, x1 + 3]) == colour  # the number tag sits on top of the box
    assert tuple(photo[5, 75]) == (0, 0, 0)  # nothing drawn elsewhere


def test_numbered_photo_shrinks_a_huge_photo_with_its_boxes():
    pred = fake_prediction([fake_face("happy", box=(1000, 1000, 2000, 2000))])
    pred.image = np.zeros((3000, 4000, 3), np.uint8)
    photo = np.asarray(cards.numbered_photo(pred, max_side=1000))
    assert photo.shape == (750, 1000, 3)
    assert tuple(photo[375, 250]) == hex_rgb(cards.face_colour(0)) and tuple(photo[375, 300]) == (0, 0, 0)


def test_photo_html_is_one_inline_image_that_names_every_verdict():
    pred = fake_prediction([fake_face("happy", 0.9), fake_face("sad", 0.6, box=(80, 20, 130, 90))])
    html = cards.photo_html(pred)
    [(_, src, alt)] = images(html)
    assert decode(src).size == (160, 120)
    assert alt == "The photo with 2 numbered face boxes (face 1: happy 90%; face 2: sad 60%)"
    assert "/file=" not in html and "http" not in html  # no file on the server to fetch


def test_a_card_shows_the_face_its_heatmaps_and_every_probability():
    pred = fake_prediction([fake_face("happy", 0.87)])
    html = cards.face_card_html(pred, 0, "hirescam")
    assert f"--fer-face:{cards.face_colour(0)}" in html and 'data-face="1"' in html
    assert "face 1: happy 87%" in html
    assert captions(html) == ["what the network sees (48×48)", "hirescam: why happy", "the same on the photo"]
    imgs = images(html)
    seen = decode(imgs[0][1])
    assert seen.size == (48, 48) and imgs[0][0] == "fer-px"  # the network's input, shown pixel for pixel
    heats = [decode(src) for cls, src, _ in imgs if cls == "fer-heat"]
    assert len(heats) == 2  # on the face and on the photo: both follow the opacity slider
    assert heats[1].mode == "RGBA" and heats[1].size == (50, 60)  # the box region, transparent where cold
    # All seven classes as bars, most probable first, widths in percent.
    names = re.findall(r'<span(?: class="fer-top")?>(\w+)</span><span class="fer-track"', html)
    assert sorted(names) == sorted(EMOTIONS) and names[0] == "happy"
    assert 'class="fer-top">happy<' in html and 'style="width:87.0%"' in html


def test_a_close_call_and_an_empty_heatmap_are_said_in_words():
    close = fake_face("happy", 0.46, runner_up="surprise", p2=0.38, target="sad", evidence=False)
    html = cards.face_card_html(fake_prediction([close]), 0, "gradcam")
    assert "face 1: happy 46% or surprise 38%" in html and "a close call" in html
    assert "gradcam: no evidence for sad in this face" in captions(html)
    assert not [cls for cls, _, _ in images(html) if cls == "fer-heat"]  # no flat blue map passed off as an answer


def test_without_explanations_a_card_has_just_the_face_and_the_bars():
    html = cards.face_card_html(fake_prediction([fake_face(cam=False)]), 0, None)
    assert captions(html) == ["what the network sees (48×48)"]
    assert len(images(html)) == 1 and "fer-heat" not in html
    assert f"max-width: {cards.VIEW_MAX_PX}px" in cards.CARDS_CSS  # a modest size, not a face filling the card


def test_cards_in_face_order_and_nothing_without_faces():
    pred = fake_prediction([fake_face("happy"), fake_face("sad", box=(80, 20, 130, 90))])
    html = cards.cards_html(pred, "gradcam")
    assert re.findall(r'data-face="(\d)"', html) == ["1", "2"]
    assert cards.cards_html(fake_prediction([]), "gradcam") == ""


def test_html_in_values_is_escaped():
    face = fake_face("happy")
    face.probabilities = {**face.probabilities}
    html = cards.face_card_html(fake_prediction([face]), 0, "<b>cam</b>")
    assert "<b>cam</b>" not in html and "&lt;b&gt;cam&lt;/b&gt;" in html
