""".ci/audit_report.py: pip-audit's JSON report read back, with canned outputs (no network)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("audit_report", ROOT / ".ci" / "audit_report.py")
audit_report = importlib.util.module_from_spec(spec)
sys.modules["audit_report"] = audit_report  # dataclasses look their module up
spec.loader.exec_module(audit_report)

SKIP = "Dependency not found on PyPI and could not be audited: {name} ({version})"


def report(clean=(), skipped=(), vulnerable=()) -> str:
    """pip-audit ``-f json`` output, as pip-audit 2.10 writes it."""
    deps = [{"name": n, "version": v, "vulns": []} for n, v in clean]
    deps += [{"name": n, "skip_reason": SKIP.format(name=n, version=v)} for n, v in skipped]
    deps += [{"name": n, "version": v, "vulns": [{"id": vid, "fix_versions": ["9.9"], "aliases": [], "description": ""}]}
             for n, v, vid in vulnerable]
    return json.dumps({"dependencies": deps, "fixes": []})


def test_nothing_looked_up_is_not_audited_and_says_so_but_passes():
    """Issue 22: on this machine's mirror pip-audit looks up none of the pins and exits 0; the old
    script printed '0 of 156 audited' and passed silently. Now the first line says NOT AUDITED."""
    s = audit_report.summarize(report(skipped=[("numpy", "2.4.6"), ("torch", "2.15.0")]), pinned=2)
    assert s.status == "NOT AUDITED" and s.audited == 0
    text = "\n".join(s.lines())
    assert text.startswith("pip-audit: NOT AUDITED: 0 of 2") and "NOT checked" in text
    assert s.exit_code() == 0 and s.exit_code(require_all=True) == 2


def test_some_looked_up_is_partly_audited():
    s = audit_report.summarize(report(clean=[("numpy", "2.4.6")], skipped=[("torch", "2.15.0")]), pinned=2)
    assert (s.status, s.audited, list(s.skipped)) == ("PARTLY AUDITED", 1, ["torch"])
    assert s.exit_code() == 0 and s.exit_code(require_all=True) == 2


def test_everything_looked_up_and_clean_is_ok():
    s = audit_report.summarize(report(clean=[("numpy", "2.4.6"), ("torch", "2.15.0")]), pinned=2)
    assert s.status == "OK" and s.exit_code(require_all=True) == 0
    assert s.lines() == ["pip-audit: OK: 2 of 2 pinned packages looked up"]


@pytest.mark.parametrize("others", [{}, {"skipped": [("torch", "2.15.0")]}])
def test_a_known_vulnerability_fails_even_when_others_were_skipped(others):
    s = audit_report.summarize(report(vulnerable=[("pillow", "9.0.0", "PYSEC-2022-1")], **others), pinned=2)
    assert s.status == "FAIL" and s.exit_code() == 1
    assert "  pillow 9.0.0: PYSEC-2022-1 (fixed in 9.9)" in s.lines()


@pytest.mark.parametrize("text", ["", "Traceback (most recent call last):\n  ...", "[]", '{"fixes": []}'])
def test_no_readable_report_is_not_audited(text):
    s = audit_report.summarize(text, pinned=3)
    assert s.status == "NOT AUDITED" and s.error
    assert s.lines()[0].startswith("pip-audit: NOT AUDITED: no report")


def test_main_reads_the_files_and_counts_the_lock_pins(tmp_path, capsys):
    lock = tmp_path / "requirements.lock"
    lock.write_text("# pins\nnumpy==2.4.6\ntorch==2.15.0\n--extra-index-url x\n\n")
    out = tmp_path / "audit.json"
    out.write_text(report(skipped=[("numpy", "2.4.6"), ("torch", "2.15.0")]))
    assert audit_report.main([str(out), str(lock)]) == 0
    assert "NOT AUDITED: 0 of 2 pinned packages" in capsys.readouterr().err
    assert audit_report.main([str(out), str(lock), "--require-all"]) == 2
    assert audit_report.main([str(tmp_path / "missing.json"), str(lock)]) == 0
    assert "pip-audit wrote nothing" in capsys.readouterr().err
