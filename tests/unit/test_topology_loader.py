"""Topology loading: valid files, and every problem at its exact file:line:col with a hint."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest

from roachctl.errors import ExitCode, Problem, TopologyError, UsageError
from roachctl.model import loader
from roachctl.model.loader import load_text, load_topology
from roachctl.model.topology import Topology

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "topologies"

MINIMAL = """\
name: prod
version: v25.4.0
nodes:
  - host: store-1
  - host: store-2
  - host: store-3
"""


def problems(text: str) -> list[Problem]:
    with pytest.raises(TopologyError) as info:
        load_text(textwrap.dedent(text), "t.yaml")
    assert info.value.exit_code == ExitCode.BAD_INPUT
    return info.value.problems


def only(text: str) -> Problem:
    found = problems(text)
    assert len(found) == 1, [p.render() for p in found]
    return found[0]


def test_interface_example_loads_with_defaults() -> None:
    t = load_topology(FIXTURES / "prod.yaml")
    assert t.name == "prod" and t.version == "v25.4.0" and t.secure
    assert t.effective_cluster_name == "prod"
    first = t.node_configs()[0]
    assert first.advertise == "198.51.100.11"
    assert first.stores == ("/var/lib/cockroach/cockroach-data",)
    assert (first.sql_port, first.http_port) == (26257, 8080)
    assert float(first.cache) == 0.25  # YAML 1.2 reads .25 as a float; kept as a decimal fraction
    assert t.node_config("store-2").advertise == "store-2"


def test_minimal_file_gets_seed_layout_defaults() -> None:
    t = load_text(MINIMAL)
    paths = (t.paths.install_root, t.paths.home, t.paths.data)
    assert paths == ("/opt", "/opt/cockroach", "/var/lib/cockroach")
    assert (t.service.user, t.service.unit) == ("cockroach", "cockroach")
    assert t.firewall.manage and t.firewall.backend == "auto"
    assert t.ssh.sudo


def test_resolved_nodes_follow_a_copy_with_other_nodes_or_defaults() -> None:
    """node_configs() is memoized by value (issue 13: planning asked for it per host and backend): a
    copy with other nodes, defaults or paths resolves afresh, never from the original's answer."""
    t = load_topology(FIXTURES / "prod.yaml")
    before = t.node_configs()
    assert t.node_configs() is before  # asked again: the same answer, not recomputed
    defaults = t.defaults.model_copy(update={"sql_port": 26999})
    fewer = t.model_copy(update={"nodes": t.nodes[:1], "defaults": defaults})
    assert [n.host for n in fewer.node_configs()] == [before[0].host]
    assert fewer.node_configs()[0].sql_port == 26999 and t.node_configs()[0].sql_port == 26257
    moved = t.model_copy(update={"paths": t.paths.model_copy(update={"data": "/srv/crdb"})})
    assert moved.node_configs()[1].stores == ("/srv/crdb/cockroach-data",)
    with pytest.raises(KeyError):
        fewer.node_config(before[1].host)


def test_model_is_frozen() -> None:
    t = load_text(MINIMAL)
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises ValidationError on frozen assignment
        t.name = "other"  # type: ignore[misc]


def test_unknown_key_points_at_key_and_suggests() -> None:
    p = only(MINIMAL.replace("  - host: store-2\n", "  - host: store-2\n    advertize: 10.0.0.2\n"))
    assert (p.file, p.line, p.column) == ("t.yaml", 6, 5)
    assert "unknown key nodes[1].advertize" in p.message
    assert "did you mean 'advertise'?" in p.hint and "valid keys here:" in p.hint


def test_unknown_key_in_wrong_section_says_where_it_belongs() -> None:
    p = only(MINIMAL + "sql_port: 26000\n")
    assert (p.line, p.column) == (7, 1)
    assert "'sql_port' belongs under defaults or nodes" in p.hint


def test_missing_required_keys_at_the_enclosing_mapping() -> None:
    found = problems("nodes:\n  - advertise: 10.0.0.1\n")
    rendered = {(p.line, p.column, p.message) for p in found}
    assert (1, 1, "missing required key 'name' in the top level") in rendered
    assert (1, 1, "missing required key 'version' in the top level") in rendered
    assert (2, 5, "missing required key 'host' in nodes[0]") in rendered


def test_all_errors_at_once_sorted_by_position() -> None:
    found = problems(
        """\
        name: Prod!
        version: 25.4.0
        secure: no
        paths:
          data: /tmp/cockroach
        firewall:
          sql_clients: [10.0.0.5/24]
        defaults:
          cache: 25%
        nodes:
          - host: store-1
            http_port: 80
        """
    )
    where = [(p.line, p.column) for p in found]
    assert where == sorted(where)
    assert where == [(1, 7), (2, 10), (3, 9), (5, 9), (7, 17), (9, 10), (12, 16)]
    hints = [p.hint for p in found]
    assert "lowercase letters" in hints[0]
    assert hints[1] == "release names start with 'v': v25.4.0"
    assert "true or false" in hints[2]
    assert "world-writable" in found[3].message
    assert hints[4] == "did you mean 10.0.0.0/24?"
    assert "25% -> .25" in hints[5]
    assert "unprivileged" in hints[6]


@pytest.mark.parametrize(
    ("snippet", "line", "col", "message", "hint"),
    [
        ("version: 25.4", 2, 10, "got the number 25.4", "leading 'v'"),
        ("version: latest", 2, 10, "invalid version 'latest'", "v25.4.0"),
        ("version: v25.4.0-rc.1", 0, 0, "", ""),
        ("version: v23.2.0-alpha.1", 0, 0, "", ""),
        ("version: v23.1.9", 2, 10, "v23.1.9 is older than v23.2.0", "node status --format=json"),
        ("version: v2.0.0", 2, 10, "v2.0.0 is older than v23.2.0", "use v23.2.0 or later"),
    ],
)
def test_version_forms(snippet: str, line: int, col: int, message: str, hint: str) -> None:
    text = MINIMAL.replace("version: v25.4.0", snippet)
    if not message:
        assert load_text(text).version == snippet.removeprefix("version: ")
        return
    p = only(text)
    assert (p.line, p.column) == (line, col) and message in p.message and hint in p.hint


def test_duplicate_hosts_and_advertise_addresses() -> None:
    extra = "  - host: STORE-1\n  - host: store-4\n    advertise: store-2\n"
    found = problems(MINIMAL.replace("  - host: store-3\n", extra))
    assert [(p.line, p.column) for p in found] == [(6, 11), (8, 16)]
    assert "listed twice (also nodes[0])" in found[0].message
    assert "also advertised by nodes[1]" in found[1].message


def test_sql_and_http_port_clash_reported_where_set() -> None:
    p = only(MINIMAL + "defaults:\n  http_port: 26257\n")
    assert (p.line, p.column) == (8, 14)
    assert p.message == "defaults.http_port: sql_port and http_port are both 26257"
    p = only(MINIMAL.replace("  - host: store-2\n", "  - host: store-2\n    sql_port: 8080\n"))
    assert (p.line, p.column) == (6, 15) and p.message.endswith("both 8080 on store-2")


def test_node_level_port_clash_points_at_node() -> None:
    p = only(MINIMAL.replace("  - host: store-2\n", "  - host: store-2\n    http_port: 26257\n"))
    assert (p.line, p.column) == (6, 16)
    assert p.message == "nodes[1].http_port: sql_port and http_port are both 26257 on store-2"


def test_locality_keys_must_match() -> None:
    text = MINIMAL.replace("store-1\n", "store-1\n    locality: region=eu,zone=a\n")
    text = text.replace("store-2\n", "store-2\n    locality: zone=b,region=eu\n")
    p = only(text)
    assert (p.line, p.column) == (7, 15)
    assert "differ from nodes[0]'s region,zone" in p.message


def test_locality_may_be_omitted_on_some_nodes() -> None:
    text = MINIMAL.replace("store-1\n", "store-1\n    locality: region=eu,zone=a\n")
    assert load_text(text).nodes[0].locality == "region=eu,zone=a"


@pytest.mark.parametrize(
    ("locality", "hint"),
    [("region = eu", "no spaces"), ("region=eu,region=us", "appears once"), ("region", "key=value")],
)
def test_bad_locality(locality: str, hint: str) -> None:
    p = only(MINIMAL.replace("store-1\n", f"store-1\n    locality: {locality}\n"))
    assert (p.line, p.column) == (5, 15) and hint in p.hint


def test_any_client_needs_explicit_opt_in() -> None:
    p = only(MINIMAL + "firewall:\n  sql_clients:\n    - 10.0.0.0/8\n    - 0.0.0.0/0\n")
    assert (p.line, p.column) == (10, 7)
    assert "allow_any_client: true" in p.hint
    ok = load_text(MINIMAL + "firewall:\n  allow_any_client: true\n  sql_clients: [0.0.0.0/0]\n")
    assert ok.firewall.sql_clients == ("0.0.0.0/0",)


def test_data_dir_symlink_is_an_explicit_boolean_opt_in() -> None:
    assert load_text(MINIMAL).paths.allow_data_symlink is False
    ok = load_text(MINIMAL + "paths:\n  allow_data_symlink: true\n")
    assert ok.paths.allow_data_symlink is True
    p = only(MINIMAL + "paths:\n  allow_data_symlink: 'yes'\n")
    assert (p.line, p.column) == (8, 23)
    p = only(MINIMAL + "paths:\n  data_symlink: true\n")
    assert (p.line, p.column) == (8, 3) and "allow_data_symlink" in p.hint  # did-you-mean


def test_insecure_cluster_never_open_to_everyone() -> None:
    text = MINIMAL + "secure: false\nfirewall:\n  allow_any_client: true\n  http_clients: ['::/0']\n"
    p = only(text)
    assert "insecure" in p.message and (p.line, p.column) == (10, 18)


def test_service_user_rules() -> None:
    p = only(MINIMAL + "service:\n  user: root\n")
    assert (p.line, p.column) == (8, 9) and "must not run as 'root'" in p.message
    p = only(MINIMAL + "ssh:\n  user: azmin\nservice:\n  user: azmin\n")
    assert (p.line, p.column) == (10, 9) and "login user 'azmin'" in p.message


def test_unit_name_suffix_is_optional_and_templates_rejected() -> None:
    assert load_text(MINIMAL + "service:\n  unit: crdb.service\n").service.unit == "crdb"
    p = only(MINIMAL + "service:\n  unit: crdb@1\n")
    assert "template" in p.hint


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/var/tmp/crdb", "world-writable"),
        ("/dev/shm/x", "world-writable"),
        ("var/lib/x", "relative"),
        ("~/data", "'~'"),
        ("/var/lib/../x", "not normalized"),
        ("/var/lib/my data", "unsupported characters"),
        ("/var/lib/x;rm", "unsupported characters"),
        ("/var/lib", "system directory"),
        ("/usr/local/crdb", "ProtectSystem"),
    ],
)
def test_bad_data_paths(path: str, fragment: str) -> None:
    p = only(MINIMAL + f"paths:\n  data: '{path}'\n")
    assert (p.line, p.column) == (8, 9)
    assert fragment in p.message + p.hint


def test_paths_must_not_nest() -> None:
    p = only(MINIMAL + "paths:\n  data: /opt/cockroach/data\n")
    assert "overlap" in p.message
    p = only(MINIMAL + "paths:\n  install_root: /srv/crdb/bin\n  data: /srv/crdb\n")
    assert "install_root /srv/crdb/bin is inside data" in p.message


def test_stores_overrides_and_conflicts() -> None:
    text = MINIMAL.replace("store-1\n", "store-1\n    stores: [/mnt/ssd1/crdb, /mnt/ssd2/crdb]\n")
    t = load_text(text)
    assert t.node_configs()[0].stores == ("/mnt/ssd1/crdb", "/mnt/ssd2/crdb")
    assert t.node_configs()[1].stores == ("/var/lib/cockroach/cockroach-data",)
    p = only(MINIMAL.replace("store-1\n", "store-1\n    stores: [/mnt/a, /mnt/a/b]\n"))
    assert "overlaps store 0" in p.message and (p.line, p.column) == (5, 22)
    p = only(MINIMAL + "defaults:\n  stores: [/var/lib/cockroach/logs]\n")
    assert "is the log dir" in p.message


def test_memory_fractions_are_bounded() -> None:
    p = only(MINIMAL + "defaults:\n  cache: .5\n  max_sql_memory: .5\n")
    assert (p.line, p.column) == (9, 19) and "75%" in p.message
    assert load_text(MINIMAL + "defaults:\n  cache: 2GiB\n  max_sql_memory: .35\n").defaults.cache == "2GiB"
    p = only(MINIMAL + "defaults:\n  cache: 2\n")
    assert "no unit" in p.message


@pytest.mark.parametrize(
    ("host", "fragment"),
    [
        ("deploy@store-1", "ssh: user:"),
        ("store-1;reboot", "ssh config alias"),
        ("-oProxyCommand=x", "ssh config alias"),
        ("[::1]", "without brackets"),
    ],
)
def test_bad_hosts(host: str, fragment: str) -> None:
    p = only(MINIMAL.replace("host: store-2", f"host: '{host}'"))
    assert (p.line, p.column) == (5, 11) and fragment in p.hint


@pytest.mark.parametrize(
    ("advertise", "fragment"),
    [("10.0.0.1:26257", "includes a port"), ("0.0.0.0", "cannot be advertised"), ("a b", "invalid address")],
)
def test_bad_advertise(advertise: str, fragment: str) -> None:
    p = only(MINIMAL.replace("host: store-2", f"host: store-2\n    advertise: '{advertise}'"))
    assert fragment in p.message and (p.line, p.column) == (6, 16)


def test_ipv6_addresses_accepted() -> None:
    t = load_text(MINIMAL.replace("host: store-2", "host: 2001:db8::2\n    advertise: 2001:db8::2"))
    assert t.nodes[1].address == "2001:db8::2"


def test_empty_and_oversized_node_lists() -> None:
    p = only("name: prod\nversion: v25.4.0\nnodes: []\n")
    assert (p.line, p.column) == (3, 8) and "no nodes" in p.message
    many = "name: p\nversion: v25.4.0\nnodes:\n" + "".join(f"  - host: h{i}\n" for i in range(129))
    assert "at most 128" in only(many).hint


def test_cluster_name_must_suit_cockroach() -> None:
    p = only(MINIMAL.replace("name: prod", "name: 1prod"))
    assert (p.line, p.column) == (1, 7) and "cluster_name:" in p.hint
    renamed = load_text(MINIMAL.replace("name: prod", "name: 1prod\ncluster_name: p1"))
    assert renamed.effective_cluster_name == "p1"


def test_join_override_validated() -> None:
    t = load_text(MINIMAL + "join: ['10.0.0.1:26257', '[2001:db8::1]:26257']\n")
    assert t.join == ("10.0.0.1:26257", "[2001:db8::1]:26257")
    p = only(MINIMAL + "join: [store-1]\n")
    assert "host:port" in p.hint


def test_type_errors_have_hints() -> None:
    found = problems(MINIMAL + "ssh: yes\nfirewall:\n  manage: 'true'\n  sql_clients: 10.0.0.0/8\n")
    assert [(p.line, p.column) for p in found] == [(7, 6), (9, 11), (10, 16)]
    assert all(p.hint for p in found)


def test_yaml_syntax_error_has_position() -> None:
    p = only("name: prod\nnodes:\n  - host: a\n   bad: [\n")
    assert p.message.startswith("YAML syntax error") and p.line >= 3


def test_duplicate_yaml_key_is_a_problem() -> None:
    p = only(MINIMAL + "name: other\n")
    assert p.line == 7 and "duplicate" in p.message and "once" in p.hint


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n", "just text\n"])
def test_empty_or_non_mapping_documents(text: str) -> None:
    p = only(text)
    assert (p.line, p.column) == (1, 1)


def test_missing_file_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        load_topology(tmp_path / "nope.yaml")
    assert info.value.exit_code == ExitCode.BAD_INPUT and info.value.hint
    with pytest.raises(UsageError):
        load_topology(tmp_path)


def test_render_names_file_line_col(tmp_path: Path) -> None:
    path = tmp_path / "topo.yaml"
    path.write_text(MINIMAL.replace("v25.4.0", "v25"))
    with pytest.raises(TopologyError) as info:
        load_topology(path)
    assert f"{path}:2:10: version: invalid version 'v25'" in info.value.render()


def test_a_version_below_the_floor_names_file_line_col_and_the_floor(tmp_path: Path) -> None:
    path = tmp_path / "topo.yaml"
    path.write_text(MINIMAL.replace("v25.4.0", "v22.2.19"))
    with pytest.raises(TopologyError) as info:
        load_topology(path)
    assert info.value.exit_code == ExitCode.BAD_INPUT
    rendered = info.value.render()
    assert f"{path}:2:10: version: CockroachDB v22.2.19 is older than v23.2.0" in rendered, rendered
    assert "v23.2.0 or later" in rendered


def test_fixture_files_load() -> None:
    for path in sorted(FIXTURES.glob("*.yaml")):
        assert isinstance(load_topology(path), Topology)


def test_full_example_uses_every_option() -> None:
    t = load_topology(FIXTURES / "full.yaml")
    assert t.effective_cluster_name == "payments-eu" and t.ssh.port == 2222
    assert t.service.unit == "cockroach-payments" and t.firewall.backend == "nftables"
    nodes = t.node_configs()
    assert nodes[0].stores == ("/mnt/nvme0/cockroach", "/mnt/nvme1/cockroach")
    assert nodes[1].stores == ("/srv/cockroach/store",)
    assert (nodes[2].cache, nodes[2].max_sql_memory, nodes[2].http_port) == ("4GiB", "4GiB", 8443)
    assert t.join == ("10.10.1.11:26257", "10.10.2.11:26257", "10.10.3.11:26257")


@pytest.mark.parametrize(
    ("section", "key", "value", "message", "hint"),
    [
        ("ssh", "user", "'-oProxyCommand'", "invalid ssh user name", "letters, digits"),
        ("ssh", "port", "'22'", "valid integer", "whole number"),
        ("ssh", "port", "0", "out of range", "between 1 and 65535"),
        ("ssh", "identity_file", "''", "at least 1 character", "non-empty"),
        ("ssh", "sudo", "'yes'", "valid boolean", "true or false"),
        ("paths", "home", "/opt", "system directory", "/opt/cockroach"),
        ("paths", "install_root", "opt", "relative", "/opt"),
        ("service", "user", "Cockroach", "invalid Linux user name", "lowercase"),
        ("firewall", "backend", "iptables", "'auto', 'nftables', 'ufw' or 'firewalld'", ""),
        ("firewall", "manage", "1", "valid boolean", "true or false"),
        ("defaults", "stores", "[data]", "relative", "absolute"),
        ("defaults", "stores", "[]", "at least 1 item", "at least one"),
        ("defaults", "max_sql_memory", "1.5", "not a fraction", "between 0 and 1"),
        ("defaults", "cache", "2gb", "invalid memory size", "GiB"),
        ("defaults", "sql_port", "70000", "out of range", "between 1 and 65535"),
    ],
)
def test_field_errors_at_value_with_hint(section: str, key: str, value: str, message: str, hint: str) -> None:
    p = only(MINIMAL + f"{section}:\n  {key}: {value}\n")
    inside = value.startswith("[") and value != "[]"  # an item's error points at the item
    assert (p.line, p.column) == (8, len(key) + 5 + inside), p.render()
    assert p.message.startswith(f"{section}.{key}")
    assert message in p.message and hint in p.hint


def test_cluster_name_field_validated() -> None:
    p = only(MINIMAL + "cluster_name: -bad\n")
    assert (p.line, p.column) == (7, 15) and "--cluster-name" in p.hint


def test_salvaged_cross_checks_run_beside_field_errors() -> None:
    text = MINIMAL.replace("  - host: store-3\n", "  - host: store-1\n  - host: store-4\n    sql_port: 80\n")
    found = problems(text)
    assert [(p.line, p.column) for p in found] == [(6, 11), (8, 15)]
    assert "listed twice" in found[0].message and "privileged" in found[1].message


def test_ssh_alias_host_needs_advertise() -> None:
    p = only(MINIMAL.replace("host: store-2", "host: db_2"))
    assert (p.line, p.column) == (5, 11) and "set advertise:" in p.hint
    assert (
        load_text(MINIMAL.replace("host: store-2", "host: db_2\n    advertise: 10.0.0.2")).nodes[1].host
        == "db_2"
    )


def test_yaml_merge_keys_do_not_break_positions() -> None:
    text = MINIMAL + "defaults: &d\n  sql_port: 26300\n  http_port: 8080\n"
    text = text.replace("  - host: store-1\n", "  - <<: {sql_port: 26400, bogus: 1}\n    host: store-1\n")
    p = only(text)
    assert "unknown key nodes[0].bogus" in p.message and p.line == 4


def test_tabs_get_an_indentation_hint() -> None:
    p = only("name: prod\nversion: v25.4.0\nnodes:\n\t- host: a\n")
    assert (p.line, p.column) == (4, 1) and "tabs" in p.hint


# --- limits (docs/findings.md S-L4): hostile files fail fast with exit 2 and a position ----------


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (  # billion laughs: each level multiplies; refused at the first alias, before expansion
            "a: &a [x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n"
                for p, c in zip("abcdefgh", "bcdefghi", strict=True)
            )
            + MINIMAL,
            2,
            "aliases",
        ),
        (MINIMAL.replace("  - host: store-1\n", "  - &n {host: store-1, advertise: *n}\n"), 4, "aliases"),
        (MINIMAL + "defaults: " + "[" * 5000 + "]" * 5000 + "\n", 7, "deeper than 32"),
        (MINIMAL + "defaults:\n  " + "- " * 5000 + "x\n", 8, "deeper than 32"),
        (MINIMAL + "defaults:\n  sql_port: " + "1" * 5000 + "\n", 8, "too long"),
    ],
    ids=["billion-laughs", "recursive-alias", "deep-flow", "deep-block", "5000-digit-port"],
)
def test_hostile_yaml_is_refused_fast_at_its_position(text: str, line: int, words: str) -> None:
    started = time.monotonic()
    p = only(text)
    assert time.monotonic() - started < 5
    assert p.line == line and words in p.message and p.hint, p.render()


def test_a_long_number_within_limits_is_an_ordinary_range_error() -> None:
    p = only(MINIMAL + "defaults:\n  sql_port: " + "9" * 90 + "\n")
    assert "out of range" in p.message and p.line == 8


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/null"])
def test_devices_are_refused_without_reading(path: str) -> None:
    with pytest.raises(UsageError, match="not a regular file") as info:
        load_topology(path)
    assert info.value.exit_code == ExitCode.BAD_INPUT


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "t.yaml"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="not a regular file"):
        load_topology(fifo)


def test_a_file_over_1_mib_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "t.yaml"
    big.write_text(MINIMAL + "#" * (1024 * 1024))
    with pytest.raises(UsageError, match="larger than 1024 KiB") as info:
        load_topology(big)
    assert info.value.exit_code == ExitCode.BAD_INPUT
    ok = tmp_path / "ok.yaml"
    ok.write_text(MINIMAL + "#" * (1024 * 1024 - len(MINIMAL) - 1) + "\n")
    assert load_topology(ok).name == "prod"


def test_a_directory_and_non_utf8_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a directory"):
        load_topology(tmp_path)
    bad = tmp_path / "t.yaml"
    bad.write_bytes(MINIMAL.encode() + b"\xff\n")
    with pytest.raises(UsageError, match="not UTF-8"):
        load_topology(bad)


# --- other software's places, accounts and units (docs/findings.md S-M5) ----------------------------------


@pytest.mark.parametrize(
    ("key", "path", "words"),
    [
        ("data", "/home/deploy", "is under /home"),
        ("data", "/home", "system directory"),
        ("data", "/root/.ssh", "is under /root"),
        ("data", "/var/lib/mysql", "is /var/lib/mysql"),
        ("data", "/var/lib/postgresql/16/main", "under /var/lib/postgresql"),
        ("data", "/var/lib/docker/crdb", "under /var/lib/docker"),
        ("data", "/var/lib/systemd/x", "under /var/lib/systemd"),
        ("data", "/var/lib/dpkg", "is /var/lib/dpkg"),
        ("data", "/var/spool/crdb", "under /var/spool"),
        ("data", "/etc/cockroach", "ProtectSystem"),
        ("data", "/boot/crdb", "ProtectSystem"),
        ("data", "/proc/crdb", "not persistent"),
        ("data", "/run/crdb", "not persistent"),
        ("data", "/tmp/crdb", "world-writable"),
        ("home", "/home/deploy/cockroach", "is under /home"),
        ("home", "/root/crdb", "is under /root"),
        ("home", "/etc/cockroach", "operating system's packages"),
        ("home", "/usr/lib/cockroach", "operating system's packages"),
        ("home", "/boot/cockroach", "operating system's packages"),
        ("home", "/var/lib/mysql/x", "under /var/lib/mysql"),
        ("home", "/dev/crdb", "not persistent"),
        ("install_root", "/home/deploy", "is under /home"),
        ("install_root", "/root", "is /root"),
        ("install_root", "/usr/lib", "operating system's packages"),
        ("install_root", "/etc", "operating system's packages"),
        ("install_root", "/var/lib/docker", "is /var/lib/docker"),
        ("install_root", "/sys/x", "not persistent"),
    ],
)
def test_paths_in_other_softwares_places_are_refused(key: str, path: str, words: str) -> None:
    p = only(MINIMAL + f"paths:\n  {key}: {path}\n")
    assert (p.line, p.column) == (8, len(key) + 5), p.render()
    assert words in p.message and p.hint, p.render()


@pytest.mark.parametrize(
    "store", ["/home/deploy/crdb", "/root/crdb", "/var/lib/postgresql", "/var/lib/mysql/x"]
)
def test_stores_in_other_softwares_places_are_refused(store: str) -> None:
    p = only(MINIMAL.replace("store-1\n", f"store-1\n    stores: [{store}]\n"))
    assert (p.line, p.column) == (5, 14) and "belongs to other software or to a login user" in p.message
    p = only(MINIMAL + f"defaults:\n  stores: [{store}]\n")
    assert (p.line, p.column) == (8, 12)


@pytest.mark.parametrize(
    ("key", "path"),
    [("install_root", "/usr/local"), ("home", "/usr/local/cockroach"), ("data", "/var/lib/cockroach-prod")],
)
def test_dedicated_places_are_still_accepted(key: str, path: str) -> None:
    assert getattr(load_text(MINIMAL + f"paths:\n  {key}: {path}\n").paths, key) == path


def test_install_root_or_home_inside_a_store_is_refused() -> None:
    """The service user owns stores; root runs the binaries under install_root and home."""
    text = MINIMAL + "paths:\n  install_root: /srv/db/bin\ndefaults:\n  stores: [/srv/db]\n"
    p = only(text)
    assert "install_root /srv/db/bin is inside store /srv/db" in p.message and (p.line, p.column) == (10, 12)
    p = only(MINIMAL + "paths:\n  home: /srv/db/home\ndefaults:\n  stores: [/srv/db]\n")
    assert "home /srv/db/home is inside store /srv/db" in p.message


@pytest.mark.parametrize(
    "unit", ["ssh", "sshd.service", "systemd-journald", "systemd-networkd", "dbus", "nftables", "cron", "ufw",
             "networking", "snap.lxd.daemon", "postgresql", "getty"],
)  # fmt: skip
def test_system_unit_names_are_refused(unit: str) -> None:
    p = only(MINIMAL + f"service:\n  unit: {unit}\n")
    assert (p.line, p.column) == (8, 9) and "unit of the system or of other software" in p.message
    assert "destroy" in p.hint


@pytest.mark.parametrize(
    "user",
    ["root", "daemon", "bin", "nobody", "postgres", "mysql", "ubuntu", "debian", "admin", "systemd-network"],
)
def test_well_known_accounts_are_refused_as_service_user(user: str) -> None:
    p = only(MINIMAL + f"service:\n  user: {user}\n")
    assert (p.line, p.column) == (8, 9) and "must not run as" in p.message and "dedicated" in p.hint


def test_the_ssh_user_is_refused_as_service_user() -> None:
    p = only(MINIMAL + "ssh:\n  user: deploy\nservice:\n  user: deploy\n")
    assert (p.line, p.column) == (10, 9) and "login user 'deploy'" in p.message


@pytest.mark.parametrize(("unit", "user"), [("cockroach-payments", "crdb"), ("crdb-prod", "cockroach_prod")])
def test_dedicated_units_and_users_are_accepted(unit: str, user: str) -> None:
    t = load_text(MINIMAL + f"service:\n  unit: {unit}\n  user: {user}\n")
    assert (t.service.unit, t.service.user) == (unit, user)


def test_a_long_plain_string_is_not_taken_for_a_number() -> None:
    p = only(MINIMAL.replace("version: v25.4.0", "version: " + "e" * 150))
    assert "invalid version" in p.message and "too long" not in p.message


def test_with_version_keeps_comments_and_order_and_validates() -> None:
    text = ("# my cluster\n" + MINIMAL).replace("version: v25.4.0", "version: v25.4.0  # pinned")
    out = loader.with_version(text.encode(), "v26.1.0").decode()
    assert out.startswith("# my cluster\n")
    assert "version: v26.1.0  # pinned" in out
    assert out.replace("v26.1.0", "v25.4.0") == text
    assert loader.load_text(out).version == "v26.1.0"
    with pytest.raises(TopologyError):
        loader.with_version(text.encode(), "latest")  # nothing invalid is ever written
