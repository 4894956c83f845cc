"""The load benchmark at a CI-friendly size: 4 gradio_client clients x 10 requests against app.py.

The full run (8 x 50) is ``python benchmarks/load.py``; its table is in the README.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.integration]

# Resident memory may grow this much over 40 requests after the warm-up pass (allocator noise);
# a leak of a photo, a heatmap or a CAM hook per request would exceed it (8 x 50 measured +2 MB).
MAX_RSS_GROWTH_MB = 60


def test_load_no_errors_no_leaks(tmp_path, release_weights):
    out = tmp_path / "load.json"
    run = subprocess.run([sys.executable, "benchmarks/load.py", "--clients", "4", "--requests", "10",
                          "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["requests"] == 40 and result["errors"] == 0, result["error_examples"]
    assert result["rss_growth_mb"] < MAX_RSS_GROWTH_MB, result
    assert result["cache_files_after"] <= result["cache_files_before"], "uploads left in Gradio's cache"
    assert 0 < result["p50_ms"] <= result["p95_ms"] <= result["max_ms"]
    assert "| errors | 0 of 40 |" in run.stdout
