"""A plan as text (for `deploy` / `deploy --dry-run`) and as JSON (`--json`).

Neither form ever contains file contents: a plan is reviewed by humans and stored in logs, and
key files must not leak there. Secret targets are marked so the reader knows why nothing is shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from roachctl.plan.state import HostPlan


def plan_to_json(plans: Sequence[HostPlan]) -> dict[str, Any]:
    """`{"changes": N, "hosts": [{"host", "converged", "changes": [{kind, target, reason, secret}]}]}`."""
    hosts = [
        {
            "host": plan.host,
            "converged": plan.converged,
            "held": plan.held or None,
            "changes": [
                {"kind": c.kind.value, "target": c.target, "reason": c.reason, "secret": c.secret}
                for c in plan.changes
            ],
        }
        for plan in plans
    ]
    return {"changes": sum(len(p.changes) for p in plans), "hosts": hosts}


def _held(plan: HostPlan) -> list[str]:
    """Why the links do not follow the topology's version, and what the operator does about it."""
    if not plan.held:
        return []
    return [
        f"  (links stay at {plan.held}, the release the node runs: deploy installs the topology's "
        "version beside it and never switches; `roachctl upgrade` switches, or set "
        f"`version: {plan.held}` in the topology file to match the running cluster)"
    ]


def plan_to_text(plans: Sequence[HostPlan]) -> str:
    """One block per host, one line per change; ends with the total ("0 changes" when converged)."""
    lines: list[str] = []
    for plan in plans:
        if plan.converged:
            lines.append(f"{plan.host}: up to date")
            lines += _held(plan)
            continue
        count = len(plan.changes)
        lines.append(f"{plan.host}: {count} change{'s' if count != 1 else ''}")
        for change in plan.changes:
            secret = " [secret]" if change.secret else ""
            lines.append(f"  {change.kind.value:<16} {change.target}{secret}  ({change.reason})")
        lines += _held(plan)
    total = sum(len(p.changes) for p in plans)
    hosts = sum(1 for p in plans if not p.converged)
    summary = f"{total} change{'s' if total != 1 else ''}"
    lines.append(summary + (f" on {hosts} host{'s' if hosts != 1 else ''}" if total else ""))
    return "\n".join(lines) + "\n"
