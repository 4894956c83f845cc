"""Every input and work limit of the serving path, in one place.

The app, the CLI and the library all read these; change a limit here, nowhere else.
Values are chosen for a 2-core CPU host serving one request at a time.
"""

from __future__ import annotations

# Uploads larger than this are refused before decoding. 20 MB holds ordinary phone and
# camera JPEGs (12 MP: 3-6 MB; 50 MP: ~10-20 MB) while bounding a request's memory.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024

# Decoded size cap: 50 megapixels (a 50 MP phone sensor is 8160x6120). An RGB copy of that
# is 150 MB; beyond it an image is refused as too large. ``fer_demo.io`` also sets PIL's own
# ``Image.MAX_IMAGE_PIXELS`` to this value, so a decompression bomb (a small file that
# declares huge dimensions) is refused from its header, before any pixel is decoded.
MAX_PIXELS = 50_000_000

# Images whose shorter side is below this are refused as too small: MTCNN's smallest
# detectable face is ~12 px and a usable face needs more than that.
MIN_SIDE = 20

# At most this many faces per image are aligned, classified and explained (the ones with
# the highest detection scores); the rest are counted and the result says it was cut.
MAX_FACES = 20

# MTCNN runs on a copy of the photo whose longer side is at most this many pixels; boxes and
# landmarks are mapped back to the original. MTCNN's cost grows with the pixel count: on a
# 1920x1080 photo, full resolution with its default 20 px smallest face takes ~580 ms of CPU,
# a 640 px copy ~85 ms (single thread; benchmarks/latency.py). With MIN_FACE_FRAC below, a
# 640 px copy still finds faces of 1/12 of the shorter side (90 px in a 1080p photo).
DETECT_MAX_SIDE = 640

# Smallest face searched for, as a fraction of the detection copy's shorter side (never
# below MTCNN's own floor, ``fer_demo.detect.MTCNN_MIN_FACE_PX`` = 20 px). It sets how many
# pyramid levels MTCNN scans: on a 640x480 photo, 1/12 (40 px) takes ~90 ms of CPU against
# ~150 ms for MTCNN's 20 px default and ~60 ms for 1/8. A face smaller than 1/12 of the
# photo's shorter side is a small part of the picture to read an expression from; pass
# ``FaceDetector(min_face_frac=...)`` for crowd shots.
MIN_FACE_FRAC = 1 / 12

# --- What the web app keeps of a visitor's photo (``fer_demo.uploads``) ----------------------
# An uploaded file is deleted from disk as soon as the request that analyses it has read it.
# Its bytes stay in memory (never on disk) this long after their last use, so the same photo can
# be re-run with other settings without uploading it again ...
RECENT_TTL_S = 600
# ... for at most this many photos and this many bytes in all (least recently used dropped first).
RECENT_MAX_ITEMS = 32
RECENT_MAX_BYTES = 256 * 1024 * 1024
# Result images (the photo with its boxes, face crops, heatmaps) are never written to disk: they
# travel inside the page's HTML (fer_demo.ui.cards).
# Backstop for files nobody analysed (an upload never submitted, a downloadable JSON result):
# every DELETE_EVERY_S seconds, the app's files older than DELETE_AFTER_S are deleted.
DELETE_EVERY_S = 60
DELETE_AFTER_S = 600
