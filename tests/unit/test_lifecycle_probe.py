"""Readiness probes over a byte pipe: a pipe that dies early is "no answer", never an internal error.

Regression: `ssh -W` to a port nobody listens on exits at once; writing the TLS hello then raised
ConnectionResetError out of `status`/`stop` ("internal error") instead of reporting the node down.
"""

from __future__ import annotations

import asyncio

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
