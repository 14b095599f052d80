"""The release gate: a Rego v1 policy evaluated in process by regopy, offline.

Rego because it is the field's standard policy language (OPA), the policy stays a file others
can read and re-run with `opa eval`, and regopy evaluates it without a server or the network.
The policy sees two documents: ``input``, the facts exported from the ledger, and ``data``,
params.yaml's allowed licenses and consent bases and the release thresholds. A policy that
cannot be evaluated blocks the release (fails closed).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from regopy import Input, Interpreter

QUERY = "deny = data.assay.release.deny"
PASSED, FAILED = "PASSED", "FAILED"


@dataclass(frozen=True)
class Verdict:
    status: str
    violations: list[dict]
    """Each {"rule": ..., "reason": ...}: what failed and why."""

    @property
    def passed(self) -> bool:
        return self.status == PASSED


def json_safe(value: object) -> object:
    """Facts as JSON allows them: NaN and infinities become null (a missing measurement)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def evaluate(policy: str, facts: dict, data: dict) -> Verdict:
    """Evaluate the policy's deny rule on the facts; no violations is PASSED."""
    try:
        rego = Interpreter()
        rego.add_module("release", policy)
        rego.add_data(json_safe(data))
        rego.set_input(Input(json_safe(facts)))
        output = rego.query(QUERY)
        denied = json.loads(str(output))["bindings"]["deny"] if output.ok() else None
    except Exception as err:  # regopy raises its own error types for syntax and runtime errors
        denied = [{"rule": "policy", "reason": f"the policy could not be evaluated: {err}"}]
    if not isinstance(denied, list):
        denied = [{"rule": "policy", "reason": f"the policy gave no deny set: {output}"}]
    violations = sorted(denied, key=lambda v: (v.get("rule", ""), v.get("reason", "")))
    return Verdict(FAILED if violations else PASSED, violations)


def read_policy(path: str | Path) -> str:
    return Path(path).read_text(encoding="utf-8")
