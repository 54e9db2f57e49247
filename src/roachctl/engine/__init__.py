"""Converging hosts to the topology — layer `engine` (rank 6: imports operation and below).

- deploy.py: probe → plan → apply → record, per host in parallel; the release source; confirmation.
- deploy_flow.py: `deploy`'s whole flow (dry run / no-op / confirm / apply), owned below the CLI.
- apply.py: one host's plan as idempotent commands (grouped into one ssh session per group).
- check.py: `check`: preflight every host and change nothing; each failure with its fix.
- adopt.py: what deploy must not take over (service user, unit files, non-empty data dirs).
- ownership.py: the ownership marker checks: only this cluster's objects are removed.
- drift.py: does each host still match what `deploy` would converge it to? (read-only)
- membership.py: rewrite `--join` and the firewalls when the cluster's members change.
- firewall.py: firewall steps outside a deploy plan: removal (destroy) and the preflight.
"""
