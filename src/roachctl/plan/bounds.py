"""How long each remote step may take (docs/findings.md S-L1): every remote command roachctl runs has a bound.

Why: ssh's ServerAlive only proves the *host* answers. A step stuck on the host (a mount in D
state, a wedged systemd or firewalld) keeps the connection "alive" forever, so without a bound a
non-interactive deploy never ends. A step that outlives its bound fails on its host alone with
`RemoteCommandError` (exit 20) naming the host, the command and the bound (exec/base.py
`timed_out`); the other hosts go on, and a re-run does what is left.

Two kinds of bound:

- **Unit jobs** are derived from the unit's own limits as rendered (plan/render.py), never copied,
  so roachctl never gives up while systemd is still legitimately working (the old `start` 120 s
  against `TimeoutStartSec=300` did):
  - `systemctl start` of a `Type=notify` unit ends when the unit is active, or, when READY does
    not come within TimeoutStartSec, only once the failed start has been shut down again
    (systemd.service(5): TimeoutStartFailureMode=terminate sends SIGTERM and waits TimeoutStopSec):
    TimeoutStartSec + TimeoutStopSec.
  - `systemctl stop`: SIGTERM drains the node for up to TimeoutStopSec, then SIGKILL (immediate;
    a process that survives SIGKILL is exactly the hung host this bound is for).
  - `systemctl restart` is a stop, then a start: the sum of both.
  - `systemctl reload`: systemd bounds ExecReload by TimeoutStartSec.
  Each adds `MARGIN_S` for the ssh round trip, sudo and systemd's own bookkeeping.
- **Quick steps** have fixed bounds far above what a healthy host needs (well under a second) and
  far below "forever": see each constant.

`ROACHCTL_STEP_TIMEOUT_SCALE` (test only, exec/base.py) multiplies every bound at the executor,
so the test bed can show a hung step failing in seconds instead of minutes.
"""

from __future__ import annotations

from roachctl.plan.render import START_TIMEOUT_S, STOP_TIMEOUT_S

MARGIN_S = 30
"""Added to systemd's own limits: ssh round trip, sudo, job bookkeeping on a loaded host."""

UNIT_STOP_S = STOP_TIMEOUT_S + MARGIN_S
"""`systemctl stop`: the drain (TimeoutStopSec) and the kill."""

UNIT_START_S = START_TIMEOUT_S + STOP_TIMEOUT_S + MARGIN_S
"""`systemctl start`: READY within TimeoutStartSec, else the failed start's stop (TimeoutStopSec)."""

UNIT_RESTART_S = STOP_TIMEOUT_S + START_TIMEOUT_S + STOP_TIMEOUT_S + MARGIN_S
"""`systemctl restart`: the stop phase, then the whole start phase (as `UNIT_START_S`)."""

UNIT_RELOAD_S = START_TIMEOUT_S + MARGIN_S
"""`systemctl reload`: ExecReload (`kill -HUP`) runs under TimeoutStartSec."""

FILESYSTEM_S = 60
"""Directories (mkdir/chown/chmod of a handful of paths), links (ln + mv), `useradd`, a small
file written atomically (`put`: temp file, sha256, chown, chmod, sync, mv), `mv`/`rm` of one file.
Sub-second on a healthy host; a hung mount or a stuck NSS lookup never finishes."""

SYSTEMD_MANAGER_S = 90
"""`systemctl daemon-reload` and `enable` (which reloads the manager too): re-running generators
and re-reading every unit file can take tens of seconds on a big host; a wedged PID 1 never answers."""

FIREWALL_LOAD_S = 120
"""Loading the cluster's rules (`nft -f`, `firewall-cmd --reload`, `ufw`): firewalld rebuilds
every zone and ipset on reload, which takes tens of seconds on busy hosts."""

FACTS_S = 120
"""The one fact-gathering script: stat and sha256 of the planned paths, `systemctl show`, the
firewall state, `df`."""

RESOLVE_S = 30
"""`getent ahosts` for the node names: a few DNS round trips (resolver timeouts are 5 s)."""

JOURNAL_S = 30
"""`journalctl -u UNIT -n N`: reads from the end of the journal."""

CLIENT_S = 60
"""A `cockroach` client command (`node status`) against a running node."""

FINALIZE_S = 1800
"""`SET CLUSTER SETTING version = 'X.Y'` (finalization): the statement returns only once every
upgrade migration has run, which can take as long as the longest running schema change
(docs/cockroach-contract.md §9). Past this bound roachctl stops waiting for the statement and
watches `SHOW CLUSTER SETTING version` instead; only a later run sends it again (to resume)."""

INIT_S = 120
"""`cockroach init`: it retries every second until the node it dials is ready (contract §3), so
it needs longer than a quick client command, but a node that is up is ready within seconds."""

DRAIN_WAIT_S = 600
"""`cockroach node drain`'s own `--drain-wait` default, 10m (docs/cockroach-contract.md §5)."""

DRAIN_S = DRAIN_WAIT_S + MARGIN_S
"""`node drain --self`: cockroach gives up after `--drain-wait`; roachctl must not give up first."""

REMOVE_S = UNIT_STOP_S + 3 * SYSTEMD_MANAGER_S + FILESYSTEM_S
"""destroy's removal script: `disable --now` of the node (a stop, then a manager reload), `disable
--now` of the firewall unit, `daemon-reload`, then rm/rmdir/userdel (cluster/destroy.py)."""

WIPE_S = 600
"""Added to `REMOVE_S` with `--wipe`: deleting the stores (many large SST files) takes a while."""

RELEASE_MIN_S = 600
"""Streaming the release into `tar` on the host: at least this long..."""

RELEASE_MIN_RATE = 256 * 1024
"""...or the tarball's size at this many bytes a second plus `MARGIN_S`, whichever is longer
(a real release is ~100 MB: 600 s unless the link is slower than ~170 KB/s)."""


def release_install_s(size_bytes: int) -> float:
    """The bound for streaming and unpacking a release tarball of `size_bytes`."""
    return float(max(RELEASE_MIN_S, MARGIN_S + size_bytes / RELEASE_MIN_RATE))


_UNIT_JOBS = {"start": UNIT_START_S, "stop": UNIT_STOP_S, "restart": UNIT_RESTART_S, "reload": UNIT_RELOAD_S}


def unit_job_s(verb: str) -> float:
    """The bound for `systemctl VERB UNIT` (a verb that is not a unit job: the manager's bound)."""
    return float(_UNIT_JOBS.get(verb, SYSTEMD_MANAGER_S))
