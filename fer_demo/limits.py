"""Every input and work limit of the serving path, in one place.

The app, the CLI and the library all read these; change a limit here, nowhere else.
Values are chosen for a 2-core CPU host serving one request at a time.
"""

from __future__ import annotations


def megabytes(n: int, digits: int = 1) -> str:
    """A byte count as people read a limit: ``megabytes(20 * 2**20)`` -> "20.0 MB"."""
    return f"{n / 2**20:.{digits}f} MB"


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

# The detection copy's contrast is stretched before MTCNN runs (PIL's ``ImageOps.autocontrast``, per
# channel): this percentage of the darkest and of the brightest pixels is clipped and the rest spread
# over 0-255. MTCNN misses dim faces: on ../shared/data/sfew-dev (film frames, many dark), no face was
# found in 28 of 337 frames without it and in 13 with it, with no new face on the examples or the
# no-face photo (benchmarks/real_photos.py; docs/real_photos.md). Only the detector sees the stretched
# copy; alignment and the classifier read the original photo. 0 turns it off.
DETECT_AUTOCONTRAST_CUTOFF = 1.0

# CPU threads each analysis step runs on: the detector (``fer_demo.detect.FaceDetector``) and the
# classifier network with or without Grad-CAM (``fer_demo.fastnet.FastNet``), set around each call for
# the calling thread only (``fer_demo.threads.intra_op_threads``; torch's process-wide setting is left
# alone). None: torch's default (both cores), for photos and videos: on a quiet 2-core machine two
# threads are 1.2-1.4x faster than one per step (benchmarks/speed.py, this setting against 1). On a
# busy machine it is the other way round, by far: with other work on both cores two OpenMP threads
# per step wait on each other, and one thread was 10-28x faster (docs/speed.md); set 1 there.
ANALYSIS_THREADS: int | None = None

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

# --- Live webcam mode (``fer_demo.live``, the Live tab) ---------------------------------------
# The browser sends a webcam frame every this many seconds (Gradio's ``stream_every``): 25 frames/s,
# ~2 MB/s upstream at 640x480 (each post is a base64 JPEG data URL, ~84 KB for benchmarks/live.py's
# frame). Faster than the server answers on purpose: the frames are not queued (Gradio's stream
# keeps only the newest posted frame, ``fer_demo.live.FrameGate`` drops any that comes while one is
# analysed), so the server answers the newest frame as soon as it is free, and the answered rate is
# what the server sustains (up to 25/s), not a fixed 10/s.
LIVE_STREAM_EVERY_S = 0.04
# Streams take turns of this many seconds (Gradio's ``time_limit``): a stream holds the live slot
# (below) while it runs; at the end of its turn the browser, still recording, joins the queue again,
# so a visitor waiting gets the slot next (and waits at most this long per stream ahead of it);
# with nobody waiting the stream goes on at once (a pause of a frame or two).
LIVE_TIME_LIMIT_S = 60
# Streams analysed at once. One stream takes whatever the two cores can answer (frames are sent
# faster than they are answered, see LIVE_STREAM_EVERY_S); a second at the same time would split
# the cores (each below the 20 frames/s a stream should get), so it waits in line, told its place,
# and gets the slot at the end of the streaming visitor's turn (LIVE_TIME_LIMIT_S): two visitors
# take turns at the full rate rather than share at half. Photos have their own slot ("inference"),
# so they are still served while someone streams.
LIVE_CONCURRENCY = 1
# The face detector (~90 ms on a 640x480 frame) runs on every this-many-th frame; the frames in
# between re-read the last detection's faces (~10 ms). At 20 frames/s: a fresh detection 6-7 times
# a second.
LIVE_DETECT_EVERY = 3
# The webcam size the Live tab asks the browser for (width, height: ``getUserMedia``'s "ideal"
# constraints; a camera that cannot gives its nearest). The browser scales, mirrors and JPEG-encodes
# every streamed frame at this size, the server decodes and analyses it, and the annotated frame comes
# back at it. A face in a webcam is large, so 320x240 loses none (MTCNN's 20 px smallest face is 1/12
# of it), and the browser's work per frame is a quarter of 640x480's: with Chromium on the same two
# cores, 640x480 answered 8-12 frames/s and 320x240 14-19 (benchmarks/live.py, docs/speed.md).
LIVE_CAPTURE = (320, 240)
# CPU threads a live frame's analysis runs on (``fer_demo.live.LiveSession``; the calling thread only,
# see ANALYSIS_THREADS). A stream shares the cores with the visitor's browser where both run on one
# machine, and with photo requests: measured with Chromium on the same two cores (benchmarks/live.py,
# 320x240), one thread answered 19.2 / 16.5 frames/s (labels / heatmap) against 16.4 / 13.8 with two.
LIVE_THREADS: int | None = 1
# Frames larger than this (longer side, px) are scaled down before anything else.
LIVE_MAX_SIDE = 640
# A frame this long after the previous one starts a new stream (fresh tracks and detection).
LIVE_RESET_AFTER_S = 2.0
# A visitor's live state (tracker, no pixels) is dropped when the page closes, or after this long
# without a frame.
LIVE_IDLE_S = 300

# --- Video files (``fer_demo.video``) ---------------------------------------------------------
# Video uploads larger than this are refused before decoding. 100 MB holds a minute of phone video
# at 720p (~60 MB) or about 45 s at 1080p; Gradio's upload limit (app.launch_settings) is the
# larger of this and MAX_UPLOAD_BYTES, photos stay capped at MAX_UPLOAD_BYTES by the app itself.
VIDEO_MAX_UPLOAD_BYTES = 100 * 1024 * 1024
# Longer videos are refused (from the container's duration, or when decoding passes it): at the
# default rate a minute is 300 analysed frames, ~20 s of CPU on two cores.
VIDEO_MAX_SECONDS = 60
# Frames analysed per second of video: the default, and the most a visitor may ask for. Expressions
# change over a few hundred ms; 5 per second follows them at ~1/3 of real time on two cores.
VIDEO_DEFAULT_FPS = 5
VIDEO_MAX_FPS = 10
# Decoded frames are brought down to this longer side before anything else (analysis, drawing,
# the annotated video); the detector works on its own copy of at most DETECT_MAX_SIDE.
VIDEO_MAX_SIDE = 1280
# The face detector (~90 ms a 640x480 frame) runs on a sampled frame about this often (seconds of
# video; at 5 frames/s every 3rd frame); in between, the last detection's faces are classified again.
VIDEO_DETECT_EVERY_S = 0.6
