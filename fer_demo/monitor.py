"""Opt-in monitoring of a deployed demo: one record per analysed face, compared with the training reference.

Off unless the operator sets ``FER_MONITOR_LOG`` (a file path): the app then appends one JSON
line per analysed face to that file and says so on its page. A record holds what describes the
*input distribution and the model's answers*, never what could show or identify a person: no
pixels, no photo, no file name, no position of the face, no address, session or browser.

    {"time": "2026-11-26T01:02:03Z", "label": "happy", "confidence": 0.93, "p_angry": 0.01, ...,
     "detector_score": 0.999, "face_px": 212, "face_frac": 0.41, "brightness": 0.50, "contrast": 0.29,
     "raw_brightness": 0.52, "raw_contrast": 0.21, "tta": "none", "cam": "hirescam", "target": null}

``brightness`` and ``contrast`` are measured on what the network sees (the face equalised and
cropped, ``transforms.model_view``), as in the reference; ``raw_brightness``/``raw_contrast`` on
the aligned face before equalisation (the photo's own lighting; logged, not compared: FER2013 has
no raw counterpart).

The reference is the same quantities on the evaluation split (PublicTest), written next to the
weights by ``python -m train export`` (``reference.csv.gz``; ``train.reference``). ``drift_table``
compares the last records with it (chi-squared for the predicted label, two-sample
Kolmogorov-Smirnov for the numbers; scipy); ``python -m fer_demo monitor`` builds the full
Evidently report (``fer_demo.monitor_report``, an optional extra).
"""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fer_demo.model import EMOTIONS

if TYPE_CHECKING:
    from fer_demo.pipeline import FaceResult, Prediction

ENV_VAR = "FER_MONITOR_LOG"
REFERENCE_NAME = "reference.csv.gz"
PROB_COLUMNS = [f"p_{e}" for e in EMOTIONS]
# What is compared with the reference (the evaluation split has no detector score or face size:
# its faces are FER2013's crops).
NUMERIC_FEATURES = ["confidence", "brightness", "contrast"]
CATEGORICAL_FEATURES = ["label"]
REFERENCE_COLUMNS = [*CATEGORICAL_FEATURES, *NUMERIC_FEATURES, *PROB_COLUMNS]
# A feature "drifted" when its test's p-value is below this.
DRIFT_P = 0.05
NOTICE = ("**This deployment keeps statistics of every analysed face** to watch whether what it sees drifts from "
          "what it was trained on: the predicted label and probabilities, the face detector's score, the face's "
          "size and brightness, the options used. Never the photo, any pixel, or anything that identifies you "
          "or your device. The **Monitor** tab shows them.")


def crop_stats(gray: np.ndarray) -> tuple[float, float]:
    """(brightness, contrast) of a uint8 face crop: its mean and standard deviation, in [0, 1]."""
    g = np.asarray(gray, dtype=np.float64) / 255.0
    return float(g.mean()), float(g.std())


def seen_stats(faces: np.ndarray) -> np.ndarray:
    """(brightness, contrast) of what the network sees of each uint8 (N, 48, 48) aligned face
    (``transforms.model_view``: equalised, centre crop): float64 (N, 2) in [0, 1]. The served faces
    and the reference are both measured here, so a photo is compared with training faces on equal
    terms (the raw crop of a photo is never equalised, FER2013's faces already are)."""
    import torch

    from fer_demo.transforms import model_view

    seen = model_view(torch.from_numpy(np.ascontiguousarray(faces, dtype=np.uint8))).numpy()
    return np.array([crop_stats(face) for face in seen], dtype=np.float64).reshape(-1, 2)


def face_record(face: FaceResult, image_shape: tuple[int, ...], tta: str, cam: str | None, target: str | None,
                when: datetime | None = None) -> dict:
    """The log record of one analysed face (see the module docstring: nothing that shows a person)."""
    x1, y1, x2, y2 = face.box
    side = max(x2 - x1, y2 - y1)
    [(brightness, contrast)] = seen_stats(face.aligned[None])
    raw_brightness, raw_contrast = crop_stats(face.aligned)
    when = when or datetime.now(timezone.utc)
    return {"time": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "label": face.label,
            "confidence": round(float(face.confidence), 5),
            **{f"p_{e}": round(float(face.probabilities[e]), 5) for e in EMOTIONS},
            "detector_score": round(float(face.detection_score), 5), "face_px": int(side),
            "face_frac": round(side / max(1, min(image_shape[:2])), 4),
            "brightness": round(brightness, 4), "contrast": round(contrast, 4),
            "raw_brightness": round(raw_brightness, 4), "raw_contrast": round(raw_contrast, 4),
            "tta": tta, "cam": cam, "target": target}


class MonitorLog:
    """Appends records to a JSON-lines file (one line per face), safe across request threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> MonitorLog | None:
        """``MonitorLog(FER_MONITOR_LOG)`` when the operator set it, else None (the default: off)."""
        path = os.environ.get(ENV_VAR, "").strip()
        return cls(path) if path else None

    def write(self, prediction: Prediction, tta: str, cam: str | None, target: str | None) -> int:
        """Append a record per face of ``prediction``; how many were written."""
        lines = [json.dumps(face_record(f, prediction.image.shape, tta, cam, target)) for f in prediction.faces]
        if lines:
            with self._lock, self.path.open("a", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")
        return len(lines)

    def read(self, last: int | None = None) -> pd.DataFrame:
        return read_log(self.path, last)


def read_log(path: str | Path, last: int | None = None) -> pd.DataFrame:
    """The log's records as a DataFrame (the ``last`` ones only, if given); unreadable lines are skipped."""
    path = Path(path)
    if not path.is_file():
        return pd.DataFrame(columns=["time", *REFERENCE_COLUMNS])
    with path.open(encoding="utf-8") as fh:
        lines = deque(fh, maxlen=last) if last else list(fh)
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a crash mid-write
            continue
        if isinstance(record, dict) and record.get("label") in EMOTIONS:
            records.append(record)
    return pd.DataFrame.from_records(records, columns=None if records else ["time", *REFERENCE_COLUMNS])


def read_reference(path: str | Path) -> pd.DataFrame | None:
    """The training reference (``reference.csv.gz`` next to the weights), or None if there is none."""
    path = Path(path)
    return pd.read_csv(path) if path.is_file() else None


def drift_table(current: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Per feature: the test, its statistic and p-value, and whether it drifted (p < ``DRIFT_P``).

    The label: chi-squared on the counts per class against the reference's class shares; the
    numbers: two-sample Kolmogorov-Smirnov. Needs at least 2 records.
    """
    from scipy import stats

    rows = []
    if len(current) >= 2:
        ref_share = reference["label"].value_counts(normalize=True).reindex(EMOTIONS, fill_value=0).to_numpy()
        counts = current["label"].value_counts().reindex(EMOTIONS, fill_value=0).to_numpy()
        expected = ref_share * counts.sum()
        seen = expected > 0  # a class the reference never predicts: compare the others
        chi = stats.chisquare(counts[seen], expected[seen] * counts[seen].sum() / expected[seen].sum())
        rows.append(("label", "chi-squared", float(chi.statistic), float(chi.pvalue)))
        for col in NUMERIC_FEATURES:
            ks = stats.ks_2samp(current[col].astype(float), reference[col].astype(float))
            rows.append((col, "Kolmogorov-Smirnov", float(ks.statistic), float(ks.pvalue)))
    table = pd.DataFrame(rows, columns=["feature", "test", "statistic", "p_value"])
    table["drifted"] = table["p_value"] < DRIFT_P
    return table


def monitor_figure(current: pd.DataFrame, reference: pd.DataFrame | None):
    """Four panels, the last records against the reference: predicted labels, confidence,
    brightness, contrast (matplotlib; the Monitor tab shows it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5))
    ax = axes[0, 0]
    x = np.arange(len(EMOTIONS))
    share = current["label"].value_counts(normalize=True).reindex(EMOTIONS, fill_value=0) if len(current) else None
    if reference is not None:
        ref = reference["label"].value_counts(normalize=True).reindex(EMOTIONS, fill_value=0)
        ax.bar(x - 0.2, ref.to_numpy(), 0.4, label="reference (PublicTest)", color="#999999")
    if share is not None:
        ax.bar(x + 0.2, share.to_numpy(), 0.4, label=f"last {len(current)} faces", color="#0072B2")
    ax.set_xticks(x, EMOTIONS, rotation=30)
    ax.set_ylabel("share of faces")
    ax.set_title("predicted label")
    ax.legend(fontsize=8)
    for ax, col in zip((axes[0, 1], axes[1, 0], axes[1, 1]), NUMERIC_FEATURES):
        bins = np.linspace(0, 1, 21)
        if reference is not None:
            ax.hist(reference[col], bins=bins, density=True, alpha=0.5, label="reference", color="#999999")
        if len(current):
            ax.hist(current[col].astype(float), bins=bins, density=True, alpha=0.6, label="last faces",
                    color="#0072B2")
        ax.set_title(col)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
