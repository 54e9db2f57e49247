"""docs/findings.md S-L1: every remote step is bounded, and the bounds come from the unit's own limits.

- A walk over src/roachctl's syntax trees: every executor call (`.run`, `.put`, `.put_stream`,
  `.get`) passes an explicit timeout that is not None, so an unbounded step cannot come back.
- plan/bounds.py covers the limits of the unit as rendered (parsed from the unit text).
- A step that hangs fails within its (scaled) bound with exit 20, naming host, step and bound.
"""

from __future__ import annotations

import ast
import asyncio
import re
from pathlib import Path

import pytest

from roachctl.engine.apply import apply_plan
from roachctl.errors import ExitCode, RemoteCommandError
from roachctl.exec.base import SCALE_ENV, step_timeout
from roachctl.exec.command import Command
from roachctl.exec.local import LocalExecutor
from roachctl.model.loader import load_topology
from roachctl.plan import bounds
from roachctl.plan.layout import layout_for
from roachctl.plan.render import render_cockroach_unit
from roachctl.plan.state import Change, ChangeKind, HostPlan

SRC = Path(__file__).resolve().parents[2] / "src" / "roachctl"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "topologies"
EXECUTOR_METHODS = {"run", "put", "put_stream", "get"}

# Calls named like executor methods that are not remote steps (receiver as written -> why).
NOT_EXECUTORS = {
    "asyncio": "asyncio.run runs the event loop",
    "subprocess": "a local process (local clusters, the release tools), not a remote step",
}


def _receiver_root(node: ast.expr) -> str:
    while isinstance(node, ast.Attribute | ast.Call):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else ""


def _executor_like(receiver: ast.expr) -> bool:
    """`.get` is everywhere (dicts): only count it on something named like an executor."""
    text = ast.unparse(receiver)
    return bool(re.search(r"executor\b|executor\(", text))


def _optional_params(func: ast.FunctionDef | ast.AsyncFunctionDef | None) -> set[str]:
    """Parameters of the enclosing function whose annotation allows None."""
    if func is None:
        return set()
    args = [*func.args.args, *func.args.kwonlyargs, *func.args.posonlyargs]
    return {a.arg for a in args if a.annotation is not None and "None" in ast.unparse(a.annotation)}


def unbounded_calls(source: str, filename: str) -> list[str]:
    """Executor calls in `source` without an explicit, non-None timeout, as `file:line: call`."""
    tree = ast.parse(source, filename)
    found: list[str] = []

    def visit(node: ast.AST, func: ast.FunctionDef | ast.AsyncFunctionDef | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else func
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute):
                check(child, child.func, func)
            visit(child, inner)

    def check(
        call: ast.Call, attr: ast.Attribute, func: ast.FunctionDef | ast.AsyncFunctionDef | None
    ) -> None:
        if attr.attr not in EXECUTOR_METHODS or _receiver_root(attr.value) in NOT_EXECUTORS:
            return
        if attr.attr == "get" and not _executor_like(attr.value):
            return
        where = f"{filename}:{call.lineno}: {ast.unparse(call)[:120]}"
        timeout = next((k.value for k in call.keywords if k.arg == "timeout"), None)
        if any(k.arg is None for k in call.keywords):
            found.append(f"{where} (**kwargs: the timeout cannot be checked)")
        elif timeout is None:
            found.append(f"{where} (no timeout=)")
        elif isinstance(timeout, ast.Constant) and timeout.value is None:
            found.append(f"{where} (timeout=None)")
        elif isinstance(timeout, ast.Name) and timeout.id in _optional_params(func):
            found.append(f"{where} (timeout={timeout.id} may be None)")

    visit(tree, None)
    return found


def test_every_executor_call_in_the_product_has_a_bound() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        found += unbounded_calls(path.read_text(), str(path.relative_to(SRC.parent)))
    assert not found, "remote steps without a bound (plan/bounds.py):\n" + "\n".join(found)


@pytest.mark.parametrize(
    "snippet",
    [
        "async def f(executor):\n    await executor.run(cmd)\n",
        "async def f(ex):\n    await ex.put(b'', '/x', mode=0o644)\n",
        "async def f(session):\n    await session.ssh.executor(h).run(cmd, timeout=None)\n",
        "async def f(ex, timeout: float | None = None):\n    await ex.run(cmd, timeout=timeout)\n",
        "async def f(ex, **kw):\n    await ex.put_stream(p, '/x', **kw)\n",
        "async def f(session):\n    await session.ssh.executor(h).get('/x')\n",
    ],
)
def test_the_walk_catches_an_unbounded_call(snippet: str) -> None:
    assert unbounded_calls(snippet, "x.py"), snippet


@pytest.mark.parametrize(
    "snippet",
    [
        "async def f(ex):\n    await ex.run(cmd, timeout=bounds.FILESYSTEM_S)\n",
        "async def f(ex, timeout: float = 3):\n    await ex.run(cmd, timeout=timeout)\n",
        "def f(d):\n    return d.get('k')\n",
        "def f():\n    asyncio.run(main())\n",
    ],
)
def test_the_walk_accepts_bounded_calls_and_non_executors(snippet: str) -> None:
    assert unbounded_calls(snippet, "x.py") == []


def _unit_limits() -> dict[str, int]:
    """TimeoutStartSec / TimeoutStopSec as they appear in the rendered unit."""
    topology = load_topology(FIXTURES / "prod.yaml")
    node = topology.node_configs()[0]
    text = render_cockroach_unit(topology, node, layout_for(topology, node, "amd64"))
    return {k: int(v) for k, v in re.findall(r"^(TimeoutSt(?:art|op)Sec)=(\d+)$", text, re.M)}


def test_unit_job_bounds_cover_the_rendered_units_own_limits() -> None:
    limits = _unit_limits()
    start, stop = limits["TimeoutStartSec"], limits["TimeoutStopSec"]
    # start: READY within TimeoutStartSec, or the failed start's shutdown (TimeoutStopSec) too
    assert bounds.unit_job_s("start") > start + stop
    assert bounds.unit_job_s("stop") > stop
    assert bounds.unit_job_s("restart") > stop + start + stop
    assert bounds.unit_job_s("reload") > start  # ExecReload runs under TimeoutStartSec
    # ...with a margin, not a fortune: each is the limits plus MARGIN_S exactly
    assert bounds.unit_job_s("restart") == stop + start + stop + bounds.MARGIN_S
    assert bounds.unit_job_s("daemon-reload") == bounds.SYSTEMD_MANAGER_S


def test_release_bound_grows_with_the_tarball() -> None:
    assert bounds.release_install_s(100 << 20) == bounds.RELEASE_MIN_S
    assert bounds.release_install_s(1 << 30) > bounds.RELEASE_MIN_S  # a 1 GiB tarball on a slow link


def test_the_scale_is_test_only_and_only_shrinks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SCALE_ENV, raising=False)
    assert step_timeout(60) == 60
    monkeypatch.setenv(SCALE_ENV, "0.1")
    assert step_timeout(60) == pytest.approx(6)
    assert step_timeout(None) is None
    for bad in ("x", "0", "-1", "5"):  # invalid, or would lengthen/disable bounds: ignored
        monkeypatch.setenv(SCALE_ENV, bad)
        assert step_timeout(60) == 60


def test_a_hung_systemctl_fails_the_step_within_its_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """apply_plan with a `systemctl` that never returns: exit 20 naming host, step and bound, fast."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "systemctl").write_text("#!/bin/sh\nexec sleep 600\n")
    (fake / "systemctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:/usr/bin:/bin")
    monkeypatch.setenv(SCALE_ENV, "0.02")  # 90 s -> 1.8 s
    plan = HostPlan("h9", (Change("h9", ChangeKind.DAEMON_RELOAD, "systemd", "unit changed"),))
    ex = LocalExecutor(host="h9")
    loop = asyncio.new_event_loop()
    try:
        started = loop.time()
        with pytest.raises(RemoteCommandError) as caught:
            loop.run_until_complete(apply_plan(ex, plan, tarballs={}))
        took = loop.time() - started
    finally:
        loop.close()
    bound = bounds.SYSTEMD_MANAGER_S * 0.02
    assert bound <= took < bound + 10
    err = caught.value
    assert err.exit_code == ExitCode.REMOTE_COMMAND and err.where == "h9"
    assert f"timed out after {bound:g}s" in err.message and "systemctl daemon-reload" in err.message
    assert err.hint and "did not finish within its bound" in err.hint


def test_a_script_step_is_shown_by_its_name_not_its_body() -> None:
    assert Command.shell("exit 0", "a", sudo=True, name="roachctl-dirs").display() == "sudo roachctl-dirs a"
