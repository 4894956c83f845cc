"""Read pip-audit's JSON report and say plainly what was checked: ``.ci/audit``'s verdict.

    python .ci/audit_report.py REPORT.json requirements.lock [--require-all]

pip-audit exits 0 both when it checked every package and when it could look up none of them (a
registry mirror without PyPI's per-version JSON API answers 404, and pip-audit skips the package
with a ``skip_reason``). This script tells those apart:

- a known vulnerability in any pin: ``FAIL`` and exit 1;
- every pin looked up, nothing found: ``OK`` and exit 0;
- some or none looked up: ``PARTLY AUDITED`` / ``NOT AUDITED`` with the count, on stderr as a
  warning, exit 0 (CI must pass where the registry has no vulnerability data), or exit 2 with
  ``--require-all`` (for a machine that does reach PyPI);
- no readable report (pip-audit crashed, no network): ``NOT AUDITED`` as above.

Standard library only: it runs before or without the project's environment.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Vulnerability:
    package: str
    version: str
    id: str
    fix_versions: tuple[str, ...] = ()


@dataclass
class AuditSummary:
    """What one pip-audit run checked. ``pinned``: the lock's pins; ``audited``: looked up;
    ``skipped``: name -> why pip-audit could not look it up; ``error``: why there is no report."""

    pinned: int
    audited: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    vulnerabilities: list[Vulnerability] = field(default_factory=list)
    error: str | None = None

    @property
    def status(self) -> str:
        """"FAIL", "OK", "PARTLY AUDITED" or "NOT AUDITED"."""
        if self.vulnerabilities:
            return "FAIL"
        if self.error is not None or self.audited == 0:
            return "NOT AUDITED"
        return "OK" if self.audited >= self.pinned else "PARTLY AUDITED"

    def exit_code(self, require_all: bool = False) -> int:
        """1 on a vulnerability; 2 when not everything was checked and ``require_all``; else 0."""
        if self.status == "FAIL":
            return 1
        return 2 if require_all and self.status != "OK" else 0

    def lines(self) -> list[str]:
        """The verdict as a person reads it: the first line says what was checked."""
        head = f"pip-audit: {self.status}: {self.audited} of {self.pinned} pinned packages looked up"
        if self.error is not None:
            return [f"pip-audit: NOT AUDITED: no report ({self.error}); 0 of {self.pinned} pinned packages "
                    "looked up. Known vulnerabilities were NOT checked."]
        out = [head + (f", {len(self.vulnerabilities)} known vulnerabilities" if self.vulnerabilities else "")]
        out += [f"  {v.package} {v.version}: {v.id}" + (f" (fixed in {', '.join(v.fix_versions)})"
                                                          if v.fix_versions else "") for v in self.vulnerabilities]
        if self.status in ("NOT AUDITED", "PARTLY AUDITED"):
            reasons = sorted(set(re.sub(r":.*", "", r) for r in self.skipped.values()))
            out.append(f"  {len(self.skipped)} could not be looked up ({'; '.join(reasons)}): known vulnerabilities "
                       f"in {'them' if self.audited else 'any of them'} were NOT checked; "
                       "run .ci/audit where PyPI's JSON API is reachable.")
        return out


def count_pins(lock_text: str) -> int:
    """Lines ``name==version`` of a requirements file (comments and options not counted)."""
    return sum(1 for line in lock_text.splitlines() if re.match(r"^\s*[A-Za-z0-9_.\-\[\],]+\s*==", line))


def summarize(report_text: str, pinned: int) -> AuditSummary:
    """An ``AuditSummary`` of pip-audit's ``-f json`` output (its ``dependencies`` list)."""
    try:
        report = json.loads(report_text)
        deps = report["dependencies"]
    except (ValueError, KeyError, TypeError) as e:
        first = report_text.strip().splitlines()[:1]
        return AuditSummary(pinned, error=f"unreadable pip-audit output: {type(e).__name__}"
                                          + (f", starts {first[0][:80]!r}" if first else ", empty"))
    summary = AuditSummary(pinned)
    for dep in deps:
        if dep.get("skip_reason"):
            summary.skipped[dep["name"]] = dep["skip_reason"]
            continue
        summary.audited += 1
        for v in dep.get("vulns") or []:
            summary.vulnerabilities.append(Vulnerability(dep["name"], dep.get("version", "?"), v["id"],
                                                         tuple(v.get("fix_versions") or ())))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="pip-audit -f json output")
    parser.add_argument("lock", type=Path, help="the requirements file that was audited")
    parser.add_argument("--require-all", action="store_true",
                        help="exit 2 unless every pin was looked up (default: warn and exit 0)")
    args = parser.parse_args(argv)
    pinned = count_pins(args.lock.read_text())
    text = args.report.read_text() if args.report.is_file() else ""
    summary = summarize(text, pinned) if text.strip() else AuditSummary(pinned, error="pip-audit wrote nothing")
    stream = sys.stdout if summary.status == "OK" else sys.stderr
    for line in summary.lines():
        print(line, file=stream)
    return summary.exit_code(args.require_all)


if __name__ == "__main__":
    sys.exit(main())
