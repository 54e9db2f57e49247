"""What each host should look like, and what must change — layer `plan` (rank 2: imports model and the
base only). Pure: no I/O, clock or randomness.

Deploy flow (the engine drives it, the plan is the contract): `needs` (facts to gather first) →
`firewall.choose_backend` → `desired.desired_state` → `diff.diff(state, facts)` → `report` (dry run, JSON).

- state.py: the desired state of one host and the `Change`s that converge it: the contract between layers.
- desired.py: topology → `HostState` per host; `release_spec` with the host's arch.
- diff.py: desired `HostState` x observed `HostFacts` → ordered `Change`s; `effects` (restart or reload).
- needs.py: the facts to gather before the desired state is known (one round trip per host).
- layout.py: where every file of a node lives.
- render.py: the systemd unit of a node.
- firewall.py: rules for the SQL and HTTP ports, for nftables, ufw or firewalld (and their removal).
- argv.py / clientargv.py: the `cockroach start` argv (local and systemd) / client commands' argv.
- report.py: a plan as text (`deploy --dry-run`) and as JSON.
- bounds.py: how long each remote step may take.
- owner.py: the ownership marker: which cluster and home a host's objects belong to.
- stoporder.py: the order a whole cluster is stopped in, and which nodes can drain.
- drainlog.py: whether a node's own log confirms its drain.
- upgradepath.py: which binaries a cluster goes through to reach a version; finalization statements.
- upgradeintent.py: the journal's intent for an upgrade in flight, checked against the cluster.
- migrations.py / settle.py: the migration jobs query and verdict / when a roll may go on (settle).
- scalein.py / shape.py: scale-in capacity and placement / scale-out and replace decisions.
- doctor.py / logs.py: `doctor`'s judgements / `logs`' commands, timestamps and merge.
- sqlinput.py: `-e` statements as the stdin of `cockroach sql` (never in argv).
"""
