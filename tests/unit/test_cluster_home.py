"""Controller-side cluster state: CA private and never re-created, node certs reused, state kept."""

import datetime as dt
import hashlib
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from roachctl.errors import RefusedError, UsageError
from roachctl.operation.home import OPERATOR_CLIENT_LIFETIME, ClusterHome, ClusterState
from roachctl.tls import pki, store


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _new_home(tmp_path: Path) -> ClusterHome:
    """A cluster home whose CA was made the only way there is: a new cluster's first deploy."""
    home = ClusterHome(tmp_path, "prod")
    assert home.is_new()
    home.begin_new_ca()
    home.commit_new_ca()
    return home


def _tree(root: Path) -> dict[str, str]:
    """sha256 of every file below `root` (what "nothing changed in the home" compares)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_ca_key_is_private_and_separate_from_certs(tmp_path: Path) -> None:
    home = _new_home(tmp_path)
    certs = home.operator_certs()
    assert _mode(home.ca_dir / "ca.key") == 0o600
    assert _mode(home.ca_dir) == 0o700
    assert not (certs / "ca.key").exists()
    assert _mode(certs / "client.root.key") == 0o600
    assert (certs / "ca.crt").read_bytes() == (home.ca_dir / "ca.crt").read_bytes()


def test_a_new_ca_is_written_only_on_commit(tmp_path: Path) -> None:
    """A dry run (or a refusal, or "no" at the prompt) plans with the new CA but writes nothing."""
    home = ClusterHome(tmp_path, "prod")
    ca = home.begin_new_ca()
    cert, _key = home.node_cert("store-1", ["10.0.0.1"])
    assert home.ca() is ca and home.ca_pending
    assert not tmp_path.joinpath("clusters").exists() or _tree(tmp_path) == {}
    home.commit_new_ca()
    assert store.load_ca(home.ca_dir).cert_pem() == ca.cert_pem()
    assert home.node_cert("store-1", ["10.0.0.1"])[0] == cert, "the planned node cert is the one kept"


def test_no_command_creates_a_ca_for_a_known_cluster(tmp_path: Path) -> None:
    home = ClusterHome(tmp_path, "prod")
    home.save_state(ClusterState(name="prod"))
    assert not home.is_new()
    with pytest.raises(RefusedError, match="already has records"):
        home.begin_new_ca()
    with pytest.raises(RefusedError, match=r"ca\.crt and .*ca\.key are missing") as caught:
        home.ca()
    assert "restore" in (caught.value.hint or "")
    assert not home.ca_dir.exists()


@pytest.mark.parametrize("method", ["ca", "ephemeral_client", "operator_certs", "node_cert"])
def test_a_deleted_ca_crt_is_refused_and_nothing_is_written(tmp_path: Path, method: str) -> None:
    """docs/findings.md S-H4: a lost ca.crt used to re-create the CA and overwrite the surviving ca.key."""
    home = _new_home(tmp_path)
    home.node_cert("store-1", ["10.0.0.1"])
    home.operator_certs()
    home.save_state(ClusterState(name="prod"))
    (home.ca_dir / "ca.crt").unlink()
    before = _tree(tmp_path)
    fresh = ClusterHome(tmp_path, "prod")  # as the next command sees it
    call = {
        "ca": fresh.ca,
        "ephemeral_client": fresh.ephemeral_client,
        "operator_certs": fresh.operator_certs,
        "node_cert": lambda: fresh.node_cert("store-1", ["10.0.0.1"]),
    }[method]
    with pytest.raises(RefusedError) as caught:
        call()
    assert caught.value.exit_code == 30
    assert "ca.crt is missing" in caught.value.message
    hint = caught.value.hint or ""
    assert "copy ca.crt back" in hint and "/opt/cockroach/certs/ca.crt" in hint
    assert str(home.certs_dir / "ca.crt") in hint  # the operator copy is named when it exists
    assert _tree(tmp_path) == before


def test_a_deleted_ca_key_is_refused_with_the_backup_hint(tmp_path: Path) -> None:
    home = _new_home(tmp_path)
    (home.ca_dir / "ca.key").unlink()
    before = _tree(tmp_path)
    with pytest.raises(RefusedError, match=r"ca\.key is missing") as caught:
        ClusterHome(tmp_path, "prod").ca()
    assert f"restore {home.ca_dir / 'ca.key'}" in (caught.value.hint or "")
    assert _tree(tmp_path) == before


def test_a_corrupt_key_is_a_refusal_not_an_internal_error(tmp_path: Path) -> None:
    home = _new_home(tmp_path)
    (home.ca_dir / "ca.key").write_bytes(
        b"-----BEGIN RSA PRIVATE KEY-----\ngarbage\n-----END RSA PRIVATE KEY-----\n"
    )
    with pytest.raises(RefusedError, match="not a readable unencrypted PEM key"):
        ClusterHome(tmp_path, "prod").ca()
    (home.ca_dir / "ca.crt").write_bytes(b"not a certificate")
    with pytest.raises(RefusedError, match="not a readable PEM certificate"):
        ClusterHome(tmp_path, "prod").ca()


def test_a_key_that_does_not_match_the_cert_is_refused(tmp_path: Path) -> None:
    home = _new_home(tmp_path)
    (home.ca_dir / "ca.key").write_bytes(pki.create_ca().key_pem())
    with pytest.raises(RefusedError, match="is not the key of") as caught:
        ClusterHome(tmp_path, "prod").ca()
    assert "matching pair" in (caught.value.hint or "")


def test_a_leaf_cert_in_place_of_the_ca_is_refused(tmp_path: Path) -> None:
    home = _new_home(tmp_path)
    leaf = pki.create_client_cert(home.ca(), "root")
    (home.ca_dir / "ca.crt").write_bytes(leaf.cert_pem())
    (home.ca_dir / "ca.key").write_bytes(leaf.key_pem())
    with pytest.raises(RefusedError, match="not a CA certificate"):
        ClusterHome(tmp_path, "prod").ca()


def test_ca_key_is_never_overwritten(tmp_path: Path) -> None:
    home = _new_home(tmp_path)
    key = (home.ca_dir / "ca.key").read_bytes()
    (home.ca_dir / "ca.crt").unlink()
    with pytest.raises(FileExistsError):
        store.create_ca(home.ca_dir)
    assert (home.ca_dir / "ca.key").read_bytes() == key
    assert not (home.ca_dir / "ca.crt").exists()
    # a lone leftover CA file (e.g. a first deploy that died half-way) is not a new cluster either
    assert not ClusterHome(tmp_path, "prod").is_new()


def test_node_cert_is_reused_while_it_covers_the_addresses(tmp_path: Path) -> None:
    home = _new_home(tmp_path)
    first = home.node_cert("store-1", ["store-1", "10.0.0.1"])
    assert home.node_cert("store-1", ["10.0.0.1", "store-1"]) == first
    widened = home.node_cert("store-1", ["store-1", "10.0.0.1", "lb.example"])
    assert widened != first
    assert {"store-1", "10.0.0.1", "lb.example"} <= set(pki.cert_sans(widened[0]))


def test_node_cert_is_reissued_when_the_ca_is_restored_to_another_one(tmp_path: Path) -> None:
    home = _new_home(tmp_path)
    first = home.node_cert("store-1", ["10.0.0.1"])
    (home.ca_dir / "ca.key").unlink()
    (home.ca_dir / "ca.crt").unlink()
    store.create_ca(home.ca_dir)  # the operator restores a (different) CA by hand
    assert home.node_cert("store-1", ["10.0.0.1"]) != first


def test_operator_client_cert_is_short_lived_and_renewed_near_expiry(tmp_path: Path) -> None:
    """docs/findings.md S-L14: the operator's root cert lived 5 years; now a day, renewed at half."""
    home = _new_home(tmp_path)
    path = home.operator_certs() / "client.root.crt"
    cert = pki.load_keypair(path.read_bytes(), (home.certs_dir / "client.root.key").read_bytes()).cert
    assert cert.not_valid_after_utc - dt.datetime.now(dt.UTC) <= OPERATOR_CLIENT_LIFETIME
    assert cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > OPERATOR_CLIENT_LIFETIME - dt.timedelta(
        minutes=5
    )
    kept = path.read_bytes()
    home.operator_certs()
    assert path.read_bytes() == kept, "a fresh cert is kept"
    store.write_client_certs(home.certs_dir, home.ca(), "root", lifetime=dt.timedelta(hours=1))
    home.operator_certs()
    renewed = pki.cert_not_after(path.read_bytes())
    assert renewed - dt.datetime.now(dt.UTC) > dt.timedelta(hours=23), "a cert about to expire is renewed"


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
    home = _new_home(tmp_path)
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


@pytest.mark.parametrize(
    "damage",
    [{"d": 2, "dmp1": 2, "dmq1": 2}, {"dmp1": 2}, {"iqmp": 1}],
    ids=["exponent", "crt-exponent", "crt-coefficient"],
)
def test_a_damaged_ca_key_whose_public_half_matches_is_refused(
    tmp_path: Path, damage: dict[str, int]
) -> None:
    """ca.key with the certificate's public numbers but a corrupt private half: loaded without
    OpenSSL's key check (too slow for every command), it is refused before anything is signed."""
    home = _new_home(tmp_path)
    good = home.ca().key.private_numbers()
    values = {k: getattr(good, k) + damage.get(k, 0) for k in ("p", "q", "d", "dmp1", "dmq1", "iqmp")}
    bad = rsa.RSAPrivateNumbers(**values, public_numbers=good.public_numbers).private_key(
        unsafe_skip_rsa_key_validation=True
    )
    pem = bad.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    (home.ca_dir / "ca.key").write_bytes(pem)
    with pytest.raises(RefusedError, match=r"ca\.key is damaged"):
        ClusterHome(tmp_path, "prod").ca()
