"""Readiness probes over a byte pipe: a pipe that dies early is "no answer", never an internal error.

Regression: `ssh -W` to a port nobody listens on exits at once; writing the TLS hello then raised
ConnectionResetError out of `status`/`stop` ("internal error") instead of reporting the node down.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from roachctl.cluster.https_stdio import ProbeError, client_context, https_get_via_stdio
from roachctl.tls import pki

# Like `ssh -W` when the forward is refused: stdin closed at once, a message, exit 255. A shell starts
# fast enough that the request usually meets a closed pipe (the old code then crashed ~2 runs in 3).
DYING_PIPE = [
    "sh",
    "-c",
    "exec 0<&-; echo 'channel 0: open failed: connect failed: Connection refused' >&2; exit 255",
]


@pytest.mark.parametrize("secure", [True, False])
def test_a_pipe_that_dies_before_the_request_is_a_probe_error_saying_why(secure: bool) -> None:
    context = client_context(pki.create_ca().cert_pem()) if secure else None
    for _ in range(5):
        with pytest.raises(ProbeError, match="connect failed: Connection refused"):
            asyncio.run(
                https_get_via_stdio(
                    DYING_PIPE, server_hostname="h1", path="/health?ready=1", ssl_context=context, timeout=10
                )
            )


def test_wait_ready_polls_fast_at_first_then_backs_off_to_one_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """A restarted node is usually ready within a few hundred ms: the first pauses are short (a flat
    1 s poll cost up to 1 s per node of a rolling restart), then they grow to 1 s."""
    from types import SimpleNamespace
    from typing import Any

    from roachctl.cluster import nodes

    answers = [nodes.Readiness(False, True, "node is not healthy")] * 8 + [
        nodes.Readiness(True, True, "ready")
    ]
    pauses: list[float] = []

    async def probe(session: Any, target: Any, *, timeout: float = 10) -> nodes.Readiness:
        return answers.pop(0)

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr(nodes, "probe_ready", probe)
    monkeypatch.setattr(nodes.asyncio, "sleep", sleep)
    state = asyncio.run(nodes.wait_ready(SimpleNamespace(), SimpleNamespace(), timeout=60))  # type: ignore[arg-type]
    assert state.ready and len(pauses) == 8
    assert pauses[0] == pytest.approx(0.1) and pauses[1] == pytest.approx(0.15)
    assert all(b >= a for a, b in itertools.pairwise(pauses)) and pauses[-1] == 1.0
    assert sum(pauses[:4]) < 1.0  # four probes within the first second, where a flat poll made one
