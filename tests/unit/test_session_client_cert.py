"""`Session.client_cert`: one short-lived client cert per command and signing CA, not one per caller."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from roachctl.exec.openssh import OpenSSH
from roachctl.model.loader import load_topology
from roachctl.operation import session as session_mod
from roachctl.operation.home import ClusterHome
from roachctl.operation.session import Session

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "topologies"


def test_one_client_cert_per_signing_ca_renewed_well_before_it_expires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = ClusterHome(tmp_path, "prod")
    home.begin_new_ca()
    home.commit_new_ca()

    async def scenario() -> None:
        async with OpenSSH() as ssh:
            session = Session(load_topology(FIXTURES / "prod.yaml"), home, ssh)
            first = session.client_cert()
            assert session.client_cert() is first  # every NodeClient of the command shares it
            assert first.cert.issuer == home.ca().cert.subject
            rotated = home.begin_ca_rotation()
            home.set_rotation_phase(2)  # from phase 2 on the new CA signs
            second = session.client_cert()
            assert second is not first and second.cert.issuer == rotated.cert.subject
            monkeypatch.setattr(session_mod, "CLIENT_CERT_REUSE_S", -1.0)  # "older than the reuse bound"
            assert session.client_cert() is not second

    asyncio.run(scenario())
