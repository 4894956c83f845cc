"""The Analyze results as HTML: the photo with numbered boxes, and one card per face.

Each face gets a number (left to right, as ``Predictor`` orders them) and a colour (per face, not
per label: two "happy" faces are told apart), used for its box on the photo and its card. A card
shows what the network saw, the heatmap on the face and on the photo region (their opacity is the
CSS variable ``--fer-cam-opacity``, set by the page's slider without a round trip), the full
verdict and all seven probabilities as bars.

The images travel inside the HTML as ``data:`` URIs, so an analysis writes no image file on the
server: nothing for another visitor's request to delete under this one (the broken images of
issue 13), nothing of a visitor's photo left on disk. Pure functions (numpy, PIL; no Gradio).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image, ImageDraw

from fer_demo.calibration import CLOSE_CALL_MARGIN
from fer_demo.colours import FACE_COLOURS
from fer_demo.ui.render import DISPLAY_MAX_SIDE, cam_caption, has_evidence

if TYPE_CHECKING:
    from fer_demo.pipeline import FaceResult, Prediction

# The heatmaps' default opacity over the face (the page's slider changes it, 0-100).
DEFAULT_OPACITY = 55
# The photo region next to the face is sent at most this many pixels on its longer side.
REGION_MAX_SIDE = 256
VIEW_MAX_PX = 168  # each image of a card is shown 112-168 CSS px wide (two a row on a phone)
HEAT_SIDE = 192  # the face heatmap is drawn at this size (smooth), the 48x48 face below it pixelated

CARDS_CSS = f"""
:root {{ --fer-cam-opacity: {DEFAULT_OPACITY / 100}; }}
.fer-photo img {{ display: block; max-width: 100%; max-height: 560px; margin: 0 auto; border-radius: 6px; }}
.fer-cards {{ display: flex; flex-direction: column; gap: 12px; }}
.fer-card {{ border: 1px solid var(--border-color-primary, #ddd); border-left: 8px solid var(--fer-face);
  border-radius: 8px; padding: 10px 12px; display: flex; flex-wrap: wrap; gap: 12px 20px; }}
.fer-card header {{ flex: 1 1 100%; display: flex; align-items: baseline; gap: 0.5em; flex-wrap: wrap; }}
.fer-badge {{ background: var(--fer-face); color: #000; font-weight: 700; border-radius: 4px;
  padding: 0 0.45em; font-size: 1.1em; }}
.fer-verdict {{ font-size: 1.15em; font-weight: 600; }}
.fer-sub {{ font-size: 0.85em; opacity: 0.8; }}
.fer-views {{ flex: 3 1 300px; display: flex; flex-wrap: wrap; gap: 10px; align-content: start; }}
.fer-views figure {{ margin: 0; flex: 1 1 112px; max-width: {VIEW_MAX_PX}px; }}
.fer-views figcaption {{ font-size: 0.85em; line-height: 1.3; margin-top: 4px; }}
.fer-stack {{ position: relative; width: 100%; aspect-ratio: 1; background: #282828; border-radius: 4px;
  overflow: hidden; }}
.fer-stack img {{ position: absolute; inset: 0; width: 100%; height: 100%; object-fit: contain; }}
.fer-px {{ image-rendering: pixelated; }}
.fer-heat {{ opacity: var(--fer-cam-opacity); }}
.fer-bars {{ flex: 1 1 200px; display: grid; grid-template-columns: auto 1fr auto; gap: 3px 8px;
  align-items: center; align-content: start; font-size: 0.9em; }}
.fer-track {{ height: 0.8em; background: var(--neutral-200, #e5e5e5); border-radius: 3px; overflow: hidden; }}
.fer-fill {{ display: block; height: 100%; background: var(--fer-face); }}
.fer-pct {{ text-align: right; font-variant-numeric: tabular-nums; }}
.fer-top {{ font-weight: 700; }}
"""


def face_colour(index: int) -> str:
    """The colour of face ``index`` (0-based) on the photo and on its card."""
    return FACE_COLOURS[index % len(FACE_COLOURS)]


def data_uri(image: np.ndarray | Image.Image, fmt: str = "PNG", quality: int = 88) -> str:
    """An image as a ``data:`` URI (PNG, or JPEG for photos)."""
    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.ascontiguousarray(image))
    buf = io.BytesIO()
    if fmt == "JPEG":
        pil.convert("RGB").save(buf, "JPEG", quality=quality)
    else:
        pil.save(buf, "PNG", compress_level=1)  # fast: these are small and sent once
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def _scaled(image: np.ndarray, max_side: int) -> tuple[Image.Image, float]:
    pil = Image.fromarray(np.ascontiguousarray(image))
    scale = min(1.0, max_side / max(pil.size))
    if scale < 1:
        pil = pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))),
                         Image.Resampling.BILINEAR)
    return pil.convert("RGB"), scale


def numbered_photo(prediction: Prediction, max_side: int = DISPLAY_MAX_SIDE) -> Image.Image:
    """The photo (at most ``max_side`` px on its longer side) with a thick box and a number tag per
    face, in the face's colour."""
    out, scale = _scaled(prediction.image, max_side)
    draw = ImageDraw.Draw(out)
    side = min(out.size)
    width = max(3, round(side / 150))
    from fer_demo.pipeline import label_font

    font = label_font(max(16, round(side / 14)))
    for i, face in enumerate(prediction.faces):
        colour = face_colour(i)
        x1, y1, x2, y2 = (round(v * scale) for v in face.box)
        draw.rectangle((x1, y1, x2 - 1, y2 - 1), outline=colour, width=width)
        text = str(i + 1)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        pad = width
        w, h = right - left + 2 * pad, bottom - top + 2 * pad
        ty = y1 - h if y1 - h >= 0 else y1  # above the box, else inside its top edge
        draw.rectangle((x1, ty, x1 + w, ty + h), fill=colour)
        draw.text((x1 + pad - left, ty + pad - top), text, fill=(0, 0, 0), font=font)
    return out


def photo_html(prediction: Prediction, max_side: int = DISPLAY_MAX_SIDE) -> str:
    """The numbered photo as an ``<img>``; its alt text lists the faces' verdicts."""
    n = len(prediction.faces)
    verdicts = "; ".join(f"face {i + 1}: {f.verdict}" for i, f in enumerate(prediction.faces))
    alt = (f"The photo with {n} numbered face box{'es' if n != 1 else ''} ({verdicts})" if n
           else "The photo: no face found")
    src = data_uri(numbered_photo(prediction, max_side), "JPEG")
    return f'<figure class="fer-photo" style="margin:0"><img src="{src}" alt="{html.escape(alt)}"></figure>'


def _figure(stack: str, caption: str) -> str:
    return f'<figure><div class="fer-stack">{stack}</div><figcaption>{html.escape(caption)}</figcaption></figure>'


def _img(src: str, alt: str, cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<img{c} src="{src}" alt="{html.escape(alt)}">'


def _region_views(prediction: Prediction, face: FaceResult, n: int) -> tuple[str, str]:
    """(photo region, its heat as a transparent PNG where there is any), same size."""
    from fer_demo.pipeline import REGION_MIN_HEAT, colorize, heatmap_to_image

    x1, y1, x2, y2 = face.box
    region, scale = _scaled(prediction.image[y1:y2, x1:x2], REGION_MAX_SIDE)
    heat = heatmap_to_image(face.heatmap, face.matrix, face.box)
    if scale < 1:
        heat = cv2.resize(heat, region.size, interpolation=cv2.INTER_LINEAR)
    rgba = np.dstack([colorize(heat), np.where(heat >= REGION_MIN_HEAT, 255, 0).astype(np.uint8)])
    return (_img(data_uri(region, "JPEG"), f"face {n} as it is in the photo"),
            _img(data_uri(rgba), f"heatmap over face {n} in the photo: warm where the evidence is", "fer-heat"))


def bars_html(probabilities: Iterable[tuple[str, float]], label: str, digits: int = 1) -> str:
    """One bar per (class, probability), in the order given, ``label``'s in bold; the bar colour is
    the enclosing element's ``--fer-face``. Used by the photo's cards and the live face."""
    rows = []
    for name, p in probabilities:
        top = ' class="fer-top"' if name == label else ""
        pct = 100 * float(p)
        rows.append(f'<span{top}>{html.escape(name)}</span>'
                    f'<span class="fer-track" role="img" aria-label="{html.escape(name)} {pct:.1f}%">'
                    f'<span class="fer-fill" style="width:{pct:.1f}%"></span></span>'
                    f'<span class="fer-pct">{pct:.{digits}f}%</span>')
    return f'<div class="fer-bars">{"".join(rows)}</div>'


def _bars(face: FaceResult) -> str:
    return bars_html(sorted(face.probabilities.items(), key=lambda kv: -kv[1]), face.label)


def face_card_html(prediction: Prediction, index: int, cam: str | None) -> str:
    """One face's card: number and verdict, what the network saw, the heatmaps, the bars."""
    from fer_demo.pipeline import colorize

    face = prediction.faces[index]
    n = index + 1
    sub = []
    if face.close_call:
        sub.append(f"a close call: the two are less than {100 * CLOSE_CALL_MARGIN:.0f} percentage points apart")
    if face.abstained:  # the refusal is the verdict; the model's guess stays visible below it, marked as such
        sub.insert(0, f"the model's unreliable guess: {face.label} {face.confidence:.0%}")
    sub.append(f"face detector confidence {face.detection_score:.2f}")
    header = (f'<header><span class="fer-badge">{n}</span><span class="fer-verdict">face {n}: '
              f'{html.escape(face.verdict)}</span><span class="fer-sub">{html.escape("; ".join(sub))}</span></header>')
    seen = _img(data_uri(face.aligned), f"face {n} as the network sees it (48 by 48 grey pixels)", "fer-px")
    views = []
    if cam and face.heatmap is not None:
        explained = face.target or face.label
        views.append(_figure(seen, "what the network sees (48×48)"))
        caption = f"{cam}: {cam_caption(face, explained)}"
        face_view = _img(data_uri(face.aligned_rgb, "JPEG"), f"face {n}, straightened and cropped, in colour")
        if has_evidence(face):
            heat = cv2.resize(face.heatmap, (HEAT_SIDE, HEAT_SIDE), interpolation=cv2.INTER_LINEAR)
            face_view += _img(data_uri(colorize(heat), "JPEG"), f"heatmap over face {n}: why {explained}, warm "
                              "where the evidence is", "fer-heat")
        views.append(_figure(face_view, caption))
        if face.matrix is not None:
            region, region_heat = _region_views(prediction, face, n)
            views.append(_figure(region + (region_heat if has_evidence(face) else ""), "the same on the photo"))
    else:  # no explanation: the face at a modest size, nothing to compare it with
        views.append(_figure(seen, "what the network sees (48×48)"))
    colour = face_colour(index)
    return (f'<article class="fer-card" style="--fer-face:{colour}" aria-label="face {n}" data-face="{n}">'
            f'{header}<div class="fer-views">{"".join(views)}</div>{_bars(face)}</article>')


def cards_html(prediction: Prediction, cam: str | None) -> str:
    """Every face's card, in face order ("" when there is no face)."""
    if not prediction.faces:
        return ""
    cards = "".join(face_card_html(prediction, i, cam) for i in range(len(prediction.faces)))
    return f'<div class="fer-cards">{cards}</div>'
