"""Controller-side cluster state: CA kept private, node certs reused, state round-trips."""

import stat
from pathlib import Path

import pytest

from roachctl.cluster.home import ClusterHome, ClusterState
from roachctl.errors import UsageError
from roachctl.tls import pki


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ca_key_is_private_and_separate_from_certs(tmp_path: Path) -> None:
    home = ClusterHome(tmp_path, "prod")
    certs = home.operator_certs()
    assert _mode(home.ca_dir / "ca.key") == 0o600
    assert _mode(home.ca_dir) == 0o700
    assert not (certs / "ca.key").exists()
    assert _mode(certs / "client.root.key") == 0o600
    assert (certs / "ca.crt").read_bytes() == (home.ca_dir / "ca.crt").read_bytes()


def test_node_cert_is_reused_while_it_covers_the_addresses(tmp_path: Path) -> None:
    home = ClusterHome(tmp_path, "prod")
    first = home.node_cert("store-1", ["store-1", "10.0.0.1"])
    assert home.node_cert("store-1", ["10.0.0.1", "store-1"]) == first
    widened = home.node_cert("store-1", ["store-1", "10.0.0.1", "lb.example"])
    assert widened != first
    assert {"store-1", "10.0.0.1", "lb.example"} <= set(pki.cert_sans(widened[0]))


def test_node_cert_is_reissued_when_the_ca_changes(tmp_path: Path) -> None:
    home = ClusterHome(tmp_path, "prod")
    first = home.node_cert("store-1", ["10.0.0.1"])
    (home.ca_dir / "ca.key").unlink()
    (home.ca_dir / "ca.crt").unlink()
    assert home.node_cert("store-1", ["10.0.0.1"]) != first


def test_state_round_trip_and_listing(tmp_path: Path) -> None:
    home = ClusterHome(tmp_path, "prod")
    assert not home.exists()
    with pytest.raises(UsageError, match="no cluster named 'prod'"):
        home.require()
    home.save_state(ClusterState(name="prod", initialized=True, cluster_id="abc", hosts=["a", "b"]))
    assert home.load_state().initialized
    assert ClusterHome.list_names(tmp_path) == ["prod"]
    assert _mode(home.state_path) == 0o600


def test_ephemeral_client_cert_is_short_lived(tmp_path: Path) -> None:
    home = ClusterHome(tmp_path, "prod")
    client = home.ephemeral_client()
    lifetime = client.cert.not_valid_after_utc - client.cert.not_valid_before_utc
    assert lifetime.days <= 2
    assert "CN=root" in client.cert.subject.rfc4514_string()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{not json", "corrupt: Expecting property name"),
        ("[1, 2]", "not a JSON object"),
        ('{"name": "prod", "hosts": "store-1"}', "'hosts' must be list, not str"),
        ('{"name": "prod", "hosts": ["a", 1]}', "list of strings"),
        ('{"name": "prod", "initialized": "yes"}', "'initialized' must be bool, not str"),
        ('{"name": "prod", "deployed_at": true}', "'deployed_at' must be int or float, not bool"),
        ('{"name": null}', "'name' must be str, not null"),
        ('{"hosts": []}', "'name' is missing"),
        ("\udcff", "corrupt"),
    ],
)
def test_a_corrupt_state_file_is_a_usage_error_naming_it(tmp_path: Path, text: str, words: str) -> None:
    home = ClusterHome(tmp_path, "prod")
    home.save_state(ClusterState(name="prod"))
    home.state_path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(UsageError) as info:
        home.load_state()
    assert words in info.value.message
    assert info.value.where == str(home.state_path)
    assert info.value.hint and "roachctl deploy" in info.value.hint


def test_unknown_state_keys_are_ignored(tmp_path: Path) -> None:
    home = ClusterHome(tmp_path, "prod")
    home.save_state(ClusterState(name="prod"))
    home.state_path.write_text('{"name": "prod", "future": 1, "deployed_at": 5}')
    assert home.load_state().deployed_at == 5


@pytest.mark.parametrize("name", ["../../tmp/x", "..", "Prod", "a/b", "", "x" * 41, "-x"])
def test_a_cluster_name_is_checked_before_any_path_is_built(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match="invalid cluster name"):
        ClusterHome(tmp_path, name)


def test_listing_skips_directories_that_are_not_cluster_names(tmp_path: Path) -> None:
    ClusterHome(tmp_path, "prod").save_state(ClusterState(name="prod"))
    odd = tmp_path / "clusters" / "Not_A_Name"
    odd.mkdir()
    (odd / "state.json").write_text("{}")
    assert ClusterHome.list_names(tmp_path) == ["prod"]
