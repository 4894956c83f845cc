"""The Analyze request: read the photo (and forget it), run the ``Predictor``, build the page's outputs.

``AnalyzeHandler`` serves both the page (``handler(...)`` and ``handler.refresh``: every output) and
the ``/predict`` API (``handler.api``); ``ResultFiles`` holds the downloadable JSON results for a
short while.
"""

from __future__ import annotations

import atexit
import json
import logging
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr
import pandas as pd

from fer_demo.io import InvalidImageError, load_image, read_bytes
from fer_demo.monitor import MonitorLog
from fer_demo.ui.cards import cards_html, photo_html
from fer_demo.ui.options import (CAM_CHOICES, DEFAULT_CAM, MEMORY_TTL_MIN, NO_CAM, NO_PHOTO_TEXT, PREDICTED, START_TEXT,
                                 TARGET_CHOICES, TTA_CHOICES)
from fer_demo.ui.render import error_html, format_summary, probability_table, result_dict
from fer_demo.uploads import RecentUploads, discard

if TYPE_CHECKING:  # the handler only needs the Predictor's interface; app.main builds one
    from fer_demo.pipeline import Prediction, Predictor

log = logging.getLogger(__name__)

# Result JSON files are handed to Gradio, which copies them into its own cache on return; the
# originals are deleted this many seconds later (the copy is removed by ``delete_cache``).
RESULT_FILE_TTL_S = 60
# Formats the app reads that browsers do not show (the Photo box would show a broken image): TIFF,
# by its first bytes (little- and big-endian). A PNG copy is shown (and analysed: the same pixels).
NO_BROWSER_PREVIEW = (b"II*\x00", b"MM\x00*")


class ResultFiles:
    """Per-request JSON files in a private temp folder, deleted soon after Gradio copied them.

    The folder is made on the first write and removed when the process exits.
    """

    def __init__(self, ttl_s: float = RESULT_FILE_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._root: Path | None = None

    @property
    def root(self) -> Path:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="fer-demo-results-"))
            atexit.register(shutil.rmtree, self._root, ignore_errors=True)
        return self._root

    def write(self, data: dict) -> Path:
        path = self.new_path("fer_result.json")
        path.write_text(json.dumps(data, indent=2) + "\n")
        return path

    def new_path(self, name: str) -> Path:
        """A path named ``name`` in a new folder of its own (pruned like the rest)."""
        self.prune()
        folder = self.root / uuid.uuid4().hex
        folder.mkdir()
        return folder / name

    def prune(self) -> None:
        if self._root is None:
            return
        cutoff = time.time() - self.ttl_s
        for folder in self._root.iterdir():
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Outputs:
    """What one analysis shows; ``as_tuple`` is the order of the page's outputs.

    ``photo`` and ``cards`` are HTML with their images inline (``fer_demo.ui.cards``): no result
    image is written to the server. ``summary`` is also where an error is said, in one place.
    """

    photo: str
    cards: str
    table: pd.DataFrame
    summary: str
    result: dict | None
    result_file: str | None

    def as_tuple(self) -> tuple:
        return self.photo, self.cards, self.table, self.summary, self.result, self.result_file

    @classmethod
    def empty(cls, summary: str = START_TEXT) -> "Outputs":
        """Nothing analysed: every output as the page starts, with ``summary`` said."""
        return cls("", "", probability_table([]), summary, None, None)

    @classmethod
    def error(cls, message: str, heading: str | None = "Could not analyse this photo.") -> "Outputs":
        """A request that could not be analysed: the message in the summary, every other output empty."""
        return cls.empty(error_html(message, heading))


class AnalyzeHandler:
    """Runs the predictor for the page (``handler(...)``: every output) and the API (``handler.api``).

    ``run`` turns ``InvalidImageError`` (not an image, too big, ...) into ``gr.Error`` with its
    message; any other failure is logged (without image data) and becomes a generic ``gr.Error``.
    The API raises it (the client gets the message); the page shows it once, in the summary, with
    every other output emptied. "No face" is a result (said in the summary), not an error.

    Uploads: a file inside ``upload_folder`` (Gradio's cache) is deleted as soon as it has been
    read, unless ``keep()`` lists it (the example photos); its bytes go to ``recent`` (memory) so
    the same upload can be analysed again with other settings. Result images are never files
    (see ``fer_demo.ui.cards``).
    """

    def __init__(self, predictor: Predictor, result_files: ResultFiles | None = None,
                 upload_folder: str | Path | None = None, recent: RecentUploads | None = None,
                 keep=lambda: (), monitor: MonitorLog | None = None) -> None:
        self.predictor = predictor
        self.monitor = monitor  # opt-in statistics per analysed face (fer_demo.monitor); None: off
        self.result_files = result_files or ResultFiles()
        self.upload_folder = Path(upload_folder or gr.utils.get_upload_folder())
        self.recent = RecentUploads() if recent is None else recent
        self.keep = keep

    def photo(self, image: str | dict | None, session: str | None = None) -> bytes:
        """The bytes of the requested photo; the uploaded file itself is deleted once read."""
        if isinstance(image, dict):  # a FileData payload: only its server-side path matters
            image = image.get("path")
        if image is None:
            raise gr.Error(NO_PHOTO_TEXT, print_exception=False)
        path = Path(image)
        if not path.is_file():
            data = self.recent.get(str(path), session)
            if data is None:
                raise gr.Error(f"This photo is no longer on the server: uploads are deleted once analysed "
                               f"and kept in memory for {MEMORY_TTL_MIN} minutes for re-runs. Please upload "
                               "it again.", print_exception=False)
            return data
        try:
            data = read_bytes(path)
        except InvalidImageError as e:  # too large, unreadable: the message is for the user
            discard(path, self.upload_folder, self.keep())
            raise gr.Error(str(e).removeprefix(f"{path}: "), print_exception=False) from None
        # Memory first, then delete: a concurrent request for the same upload finds one or the other.
        self.recent.put(str(path), data, session)
        discard(path, self.upload_folder, self.keep())
        return data

    def run(self, image: str | dict | None, cam: str, target: str, tta: str,
            session: str | None = None) -> tuple[Prediction, float, str | None, str | None]:
        """Validate the request and analyse it: (prediction, seconds, cam or None, target or None).

        ``image``: a file path, or Gradio's upload payload (``{"path": ..., ...}``, what the events
        receive with ``preprocess=False``). ``session``: the browser session, for ``recent``.
        """
        for name, value, choices in (("explanation method", cam, CAM_CHOICES), ("target", target, TARGET_CHOICES),
                                     ("test-time augmentation", tta, TTA_CHOICES)):
            if value not in choices:
                raise gr.Error(f"Unknown {name} {value!r}. Choose one of {choices}.", print_exception=False)
        data = self.photo(image, session)
        cam_arg = None if cam == NO_CAM else cam
        target_arg = None if target == PREDICTED else target
        start = time.perf_counter()
        try:
            prediction = self.predictor.analyze(data, cam=cam_arg, target=target_arg, tta=tta)
        except InvalidImageError as e:  # not an image, too large, ...: the message is for the user
            raise gr.Error(str(e), print_exception=False) from None
        except Exception:  # noqa: BLE001 - the UI boundary: log it, keep serving, show no traceback
            log.exception("analysis failed")
            raise gr.Error("Something went wrong while analysing this photo. The error has been logged; "
                           "please try another photo.", print_exception=False) from None
        seconds = time.perf_counter() - start
        if self.monitor is not None:
            try:
                self.monitor.write(prediction, tta, cam_arg, target_arg)
            except OSError as e:  # a full disk must not cost the visitor the result
                log.warning("monitoring log not written: %s", e)
        return prediction, seconds, cam_arg, target_arg

    def api(self, image: str | dict | None, cam: str = DEFAULT_CAM, target: str = PREDICTED, tta: str = "none",
            request: gr.Request = None) -> dict:
        """The ``/predict`` endpoint: the result as a JSON-able dict (see ``result_dict``)."""
        prediction, seconds, cam_arg, target_arg = self.run(image, cam, target, tta, _session(request))
        return result_dict(prediction, seconds, cam_arg, target_arg, tta)

    def __call__(self, image: str | dict | None, cam: str = DEFAULT_CAM, target: str = PREDICTED,
                 tta: str = "none", request: gr.Request = None) -> tuple:
        """The Analyze button: every output of the page, in ``Outputs`` order (an error in the summary)."""
        if image is None:
            return Outputs.error(NO_PHOTO_TEXT, heading=None).as_tuple()
        try:
            prediction, seconds, cam_arg, target_arg = self.run(image, cam, target, tta, _session(request))
        except gr.Error as e:
            return Outputs.error(e.message).as_tuple()
        return self.outputs(prediction, seconds, cam_arg, target_arg, tta).as_tuple()

    def refresh(self, image: str | dict | None, cam: str = DEFAULT_CAM, target: str = PREDICTED,
                tta: str = "none", request: gr.Request = None) -> tuple:
        """A new photo or a changed option: analyse again; no photo (cleared) is the starting page."""
        if image is None:
            return Outputs.empty().as_tuple()
        return self(image, cam, target, tta, request)

    @staticmethod
    def clear() -> tuple:
        """Every output as the page starts (before a new photo's result, so no old one stays up)."""
        return Outputs.empty().as_tuple()

    def new_photo(self, image: str | dict | None) -> tuple:
        """A photo was put in: every output as the page starts, then what the Photo box shows.

        The Photo box is left as it is (``gr.skip()``), except for a format browsers cannot show
        (TIFF): then it gets a PNG copy of the upright photo, which the analysis reads in its place
        (the same pixels: ``load_image`` of either gives the same RGB); the upload itself is deleted.
        A file that cannot be read is left for the analysis to say so.
        """
        return (*self.clear(), self.preview(image))

    def preview(self, image: str | dict | None):
        if isinstance(image, dict):
            image = image.get("path")
        if image is None or not Path(image).is_file():
            return gr.skip()
        path = Path(image)
        try:
            with path.open("rb") as fh:
                if not fh.read(4).startswith(NO_BROWSER_PREVIEW):
                    return gr.skip()
            photo = load_image(read_bytes(path))
        except (OSError, InvalidImageError):
            return gr.skip()
        png = self.result_files.new_path(path.with_suffix(".png").name)
        photo.save(png, "PNG", compress_level=1)
        discard(path, self.upload_folder, self.keep())
        return str(png)

    def forget_session(self, request: gr.Request = None) -> None:
        """The tab was closed or the page cleared: drop the photos this session sent from memory."""
        session = _session(request)
        if session:
            self.recent.drop_session(session)

    def outputs(self, prediction: Prediction, seconds: float, cam: str | None, target: str | None,
                tta: str) -> Outputs:
        result = result_dict(prediction, seconds, cam, target, tta)
        result_file = str(self.result_files.write(result))
        return Outputs(photo_html(prediction), cards_html(prediction, cam), probability_table(prediction.faces),
                       format_summary(prediction, seconds, cam, target, tta), result, result_file)


def _session(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None) if request is not None else None
