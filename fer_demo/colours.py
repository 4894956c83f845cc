"""The palette: one colour per face and one per expression, the same on every page and plot."""

from __future__ import annotations

# Okabe-Ito: told apart with the common colour-vision deficiencies. One colour per face (a photo's
# numbered faces, a video's or the webcam's tracks), cycled past seven ...
FACE_COLOURS = ("#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#0072B2", "#D55E00", "#F0E442")
# ... and one per expression in the plots of probabilities over time (Okabe-Ito and gray).
EXPRESSION_COLOURS = {"angry": "#D55E00", "disgust": "#009E73", "fear": "#CC79A7", "happy": "#E69F00",
                      "sad": "#0072B2", "surprise": "#56B4E9", "neutral": "#7F7F7F"}
OTHER_COLOURS = ("#000000", "#F0E442", "#999933", "#882255")  # classes of a model with other names


def expression_colour(name: str, index: int) -> str:
    """The plot colour of class ``name`` (the ``index``-th class of its model)."""
    return EXPRESSION_COLOURS.get(name, OTHER_COLOURS[index % len(OTHER_COLOURS)])


def rgb(hex_colour: str) -> tuple[int, int, int]:
    """A "#RRGGBB" colour as an (R, G, B) tuple of 0-255 ints (for drawing with OpenCV)."""
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))


__all__ = ["FACE_COLOURS", "EXPRESSION_COLOURS", "OTHER_COLOURS", "expression_colour", "rgb"]
