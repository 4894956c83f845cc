"""The drift report of a monitoring log against the training reference, built with Evidently.

    python -m fer_demo monitor --log monitor.jsonl --out report.html [--last 500]

An optional extra (``pip install -r requirements-monitor.txt -c requirements.lock``): the app
never imports this module. Evidently's telemetry is switched off before it is imported. The
report compares the log's last records with ``reference.csv.gz`` (the evaluation split, shipped
with the weights) on the predicted label (categorical) and the confidence, brightness and
contrast of the faces (numerical), one statistical test per feature, chosen by Evidently for the
sample sizes (e.g. Jensen-Shannon or chi-squared for the label, Wasserstein or K-S for numbers).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from fer_demo.monitor import CATEGORICAL_FEATURES, NUMERIC_FEATURES, read_log, read_reference

INSTALL_HINT = "pip install -r requirements-monitor.txt -c requirements.lock"


class MonitorReportError(RuntimeError):
    """The report cannot be built (no Evidently, no records, no reference); the message says why."""


def _evidently():
    os.environ.setdefault("EVIDENTLY_DISABLE_TELEMETRY", "1")  # no usage data sent anywhere
    os.environ.setdefault("DO_NOT_TRACK", "1")
    try:
        import evidently  # noqa: F401
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset
    except ImportError as e:
        raise MonitorReportError(f"the drift report needs Evidently, an optional extra: {INSTALL_HINT} ({e})") from None
    return DataDefinition, Dataset, Report, DataDriftPreset


def build_report(log: str | Path, reference: str | Path, out: str | Path, last: int | None = None) -> pd.DataFrame:
    """Write the Evidently HTML report to ``out``; returns per feature: drift score, method, drifted."""
    current = read_log(log, last)
    if len(current) < 2:
        raise MonitorReportError(f"{log}: {len(current)} record(s); the report needs at least 2 analysed faces")
    ref = read_reference(reference)
    if ref is None:
        raise MonitorReportError(f"{reference}: no reference file (python -m train reference --weights ... --data ...)")
    DataDefinition, Dataset, Report, DataDriftPreset = _evidently()
    columns = [*CATEGORICAL_FEATURES, *NUMERIC_FEATURES]
    definition = DataDefinition(numerical_columns=NUMERIC_FEATURES, categorical_columns=CATEGORICAL_FEATURES)
    snapshot = Report([DataDriftPreset(columns=columns)]).run(
        current_data=Dataset.from_pandas(current[columns], data_definition=definition),
        reference_data=Dataset.from_pandas(ref[columns], data_definition=definition))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(out))
    rows = []
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift"):
            score, threshold = float(metric["value"]), float(config["threshold"])
            # Evidently's convention: a p-value drifts below the threshold, a distance above it.
            p_value = "p_value" in config["method"]
            rows.append((config["column"], config["method"], score, threshold,
                         score < threshold if p_value else score >= threshold))
    return pd.DataFrame(rows, columns=["feature", "method", "score", "threshold", "drifted"])
