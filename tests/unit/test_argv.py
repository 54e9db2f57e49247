"""The shared `cockroach start` argv builder."""

import pytest

from roachctl.plan.argv import StartSpec, start_argv


def _spec(**kw: object) -> StartSpec:
    base: dict[str, object] = dict(
        binary="/opt/cockroach/cockroach",
        stores=("/var/lib/cockroach/data",),
        listen_addr="10.0.0.1:26257",
        http_addr="10.0.0.1:8080",
        join=("a:26257", "b:26257"),
        certs_dir="/opt/cockroach/certs",
    )
    base.update(kw)
    return StartSpec(**base)  # type: ignore[arg-type]


def test_secure_argv_has_certs_dir_and_absolute_paths() -> None:
    argv = start_argv(_spec(log_dir="/var/lib/cockroach/logs"))
    assert argv[:3] == ["/opt/cockroach/cockroach", "start", "--certs-dir=/opt/cockroach/certs"]
    assert "--join=a:26257,b:26257" in argv
    assert "--store=path=/var/lib/cockroach/data" in argv
    assert "--insecure" not in argv


def test_insecure_only_when_no_certs_dir() -> None:
    assert "--insecure" in start_argv(_spec(certs_dir=None))


@pytest.mark.parametrize("field", ["log_dir", "temp_dir", "pid_file", "certs_dir"])
def test_relative_paths_are_refused(field: str) -> None:
    with pytest.raises(ValueError, match="absolute"):
        start_argv(_spec(**{field: "relative/path"}))


def test_join_is_mandatory() -> None:
    with pytest.raises(ValueError, match="join"):
        start_argv(_spec(join=()))
