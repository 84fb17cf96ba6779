"""Summarize an Autobahn|Testsuite report: the verdicts per section, every
failing case with the suite's own words on it, and exit status 1 if any case
failed or is missing.

    python3 scripts/autobahn_summary.py REPORTS/index.json
                                        [--expected expected.json] [--agent NAME]

A case passes as OK, NON-STRICT (allowed by the RFC, not the preferred
behaviour) or INFORMATIONAL (nothing to judge). It fails as FAILED, WRONG
CODE (the wrong close code), UNCLEAN (the TCP connection did not end as RFC
6455 says), FAILED BY CLIENT, UNIMPLEMENTED (the peer did not agree to
permessage-deflate: optional in RFC 7692, but trionet implements it, so a
peer that stopped negotiating it is a regression, not a choice), or MISSING:
listed in
``--expected`` (what ``scripts/autobahn`` asked the suite to run) but not in
the report, so that a run that stopped half-way cannot pass.

Each case has two verdicts, on the exchange (``behavior``) and on the closing
(``behaviorClose``); the case fails if either does.

Plain Python 3 and only the standard library: ``scripts/autobahn`` runs it
with whatever ``python3`` is at hand.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path
from typing import Any

PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}
FAILING = {"FAILED", "WRONG CODE", "UNCLEAN", "FAILED BY CLIENT", "UNIMPLEMENTED", "MISSING"}

# Characters of the suite's explanation printed per failing case: enough for
# "Expected [...], got [...]" on small frames, short of a 16 MiB payload.
RESULT_CHARS = 300


def case_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case_id.split("."))


def verdict(result: dict[str, Any]) -> str:
    """The case's verdict: the first failing one of its two, else the
    exchange's. A verdict this script does not know fails the case: a new
    one from the suite must be judged by a person before it can pass."""
    for behavior in (result["behavior"], result["behaviorClose"]):
        if behavior not in PASSING:
            return str(behavior)
    return str(result["behavior"])


def explanation(reports: Path, result: dict[str, Any]) -> str:
    """What the suite said about a case, from its own report file."""
    name = result.get("reportfile")
    if not name:
        return ""
    try:
        with open(reports / name, encoding="utf-8") as f:
            case = json.load(f)
    except (OSError, ValueError) as exc:
        return f"(no report: {exc})"
    parts = [str(case.get("result", "")), str(case.get("resultClose", ""))]
    text = " | ".join(part for part in parts if part)
    if len(text) > RESULT_CHARS:
        text = text[:RESULT_CHARS] + " ..."
    return text


def summarize(index_path: Path, expected: list[str] | None, agent: str | None) -> int:
    reports = index_path.parent
    index: dict[str, dict[str, dict[str, Any]]] = {}
    if index_path.exists():
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
    else:
        print(f"autobahn: no {index_path}: the suite wrote no report")
    if agent is not None:
        index = {agent: index.get(agent, {})}
    elif not index:
        index = {"(no agent)": {}}
    status = 0
    for name, cases in index.items():
        verdicts = {case_id: verdict(result) for case_id, result in cases.items()}
        for case_id in expected or ():
            verdicts.setdefault(case_id, "MISSING")
        per_section: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )
        failing = []
        for case_id in sorted(verdicts, key=case_key):
            per_section[case_id.split(".")[0]][verdicts[case_id]] += 1
            if verdicts[case_id] not in PASSING:
                failing.append(case_id)
        passed = len(verdicts) - len(failing)
        print(f"agent {name}: {len(verdicts)} cases, {passed} passed, {len(failing)} failed")
        for section in sorted(per_section, key=int):
            counts = per_section[section]
            good = sum(n for v, n in counts.items() if v in PASSING)
            bad = sum(counts.values()) - good
            detail = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
            print(f"  section {section:>2}: {good:>3} passed, {bad:>3} failed  ({detail})")
        if failing:
            status = 1
            print("  failing cases:")
            missing = []
            for case_id in failing:
                result = cases.get(case_id)
                if result is None:
                    missing.append(case_id)
                    continue
                pair = f"{result['behavior']}/{result['behaviorClose']}"
                print(f"    {case_id} {pair}: {explanation(reports, result)}")
            if missing:
                # One line: a run that stopped early misses hundreds.
                print(f"    MISSING (never run, or no report): {' '.join(missing)}")
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", type=Path, help="the report's index.json")
    parser.add_argument(
        "--expected", type=Path, help="a JSON list of the case ids the run was to cover"
    )
    parser.add_argument("--agent", help="only this agent's results")
    args = parser.parse_args()
    expected = None
    if args.expected is not None:
        with open(args.expected, encoding="utf-8") as f:
            expected = [str(case_id) for case_id in json.load(f)]
    return summarize(args.index, expected, args.agent)


if __name__ == "__main__":
    sys.exit(main())
