"""CockroachDB procedures on a deployed cluster — layer `cluster` (rank 7: imports engine and below).

Each verb's flow lives here, called by one CLI function with a Session (operation/session.py).

- lifecycle.py: start/init, the quorum-ordered stop and rolling restart; cluster health gates.
- connect.py: `start` and where to connect afterwards (the endpoints of the started nodes).
- endpoints.py: where the operator connects: SQL URLs with the home's client certs, DB Console URLs.
- deploystart.py: `deploy --start`: the deploy, then `start`, in one session under the same locks.
- nodes.py: targets, client commands, readiness and systemctl on the nodes.
- client.py: `cockroach` client commands (init, node status/drain, sql) with ephemeral certificates.
- https_stdio.py: HTTPS GET over a child's stdin/stdout (`ssh -W host:port`): the readiness probe.
- nodestatus.py: `cockroach node status --format=json` parsed into typed rows (contract §5).
- status.py: `status`: per node systemd state, pid, readiness, liveness, membership, version, certs, drift.
- sqlshell.py: `sql`: statements through a ready node, or an interactive shell over `ssh -t`.
- destroy.py: `destroy`: stop, then remove what roachctl installed (data only with --wipe).
- inventory.py: `list`: the clusters a home knows, from their state files (no host contacted).
- scaleout.py / scalein.py / replace.py: `scale-out`, `scale-in`, `replace`.
- upgrade.py: `upgrade`, `upgrade finalize|rollback`: gated rolling binary changes (contract §9).
- migrations.py / settle.py: finalization's migration jobs, read / the settle gate between nodes.
- prune.py: `prune`: release dirs no node uses and rollback no longer needs.
- certstatus.py / certrotate.py: `certs status`, `certs rotate` (node certs, CA in three phases).
- doctor.py / logs.py / debugzip.py: `doctor`, `logs`, `debug-zip` (read-only).
"""
