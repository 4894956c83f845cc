"""What a visitor can choose on the page, and the limits the page states (from ``fer_demo.limits``)."""

from __future__ import annotations

from fer_demo import limits
from fer_demo.explain import CAM_METHODS, DEFAULT_CAM
from fer_demo.io import ACCEPTED
from fer_demo.model import EMOTIONS

NO_CAM = "none"
PREDICTED = "predicted"
CAM_HELP = (f"default {DEFAULT_CAM}: the method that measured most faithful on this model (Model page); "
            "'none' is fastest")
CAM_CHOICES = [*CAM_METHODS, NO_CAM]
TARGET_CHOICES = [PREDICTED, *EMOTIONS]
TTA_CHOICES = ["none", "flip", "tencrop"]

MEMORY_TTL_MIN = limits.RECENT_TTL_S // 60

START_TEXT = "Upload a photo, take one with the webcam or pick an example: it is analysed at once."
NO_PHOTO_TEXT = "Upload a photo, take one with the webcam or pick an example first."


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{n / 2**10:.0f} KB"


# Faces smaller than this fraction of the photo's shorter side are not searched for.
MIN_FACE_FRACTION = f"1/{round(1 / limits.MIN_FACE_FRAC)}"
LIMITS_TEXT = (
    f"**Limits:** {ACCEPTED} photos up to {_mb(limits.MAX_UPLOAD_BYTES)} and {limits.MAX_PIXELS / 1e6:.0f} "
    f"megapixels, at least {limits.MIN_SIDE} px a side; faces smaller than {MIN_FACE_FRACTION} of the photo's "
    f"shorter side are not looked for; at most {limits.MAX_FACES} faces are analysed per photo (the most "
    "confident detections)."
)
NO_FACE_HINT = (f"If there is a face in it, it may be turned away, too dark, or smaller than {MIN_FACE_FRACTION} "
                "of the photo's shorter side (crop the photo closer to it).")


