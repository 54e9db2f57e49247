"""Local clusters: N secure CockroachDB nodes on this machine, supervised by roachctl — layer `local`
(rank 8: imports cluster and below; only the CLI imports it).

Modules, one job each (inside, imports point downward: ops/upgrade → cluster → client/process/state/ports):

- layout.py: where a cluster lives: ``<home>/local/<name>/{ca,certs,nodes/n<i>,state.json,journal.jsonl}``.
- ports.py: choosing SQL/RPC and HTTP ports (pure planner + an injected "in use" probe).
- state.py: the atomic JSON state file: ports, dirs, pid + create_time + argv, init done.
- certs.py: CA (kept in ``ca/``), node and root client certs via ``roachctl.tls``.
- process.py: spawn in a new session; re-identify a recorded pid before signalling it.
- client.py: /health probes and ``cockroach`` client commands (init, node drain/status).
- interrupts.py: first Ctrl-C = graceful, second = at once.
- cluster.py: `LocalCluster`: bring up (spawn, init once, wait ready), quorum-safe stop, the journal.
- ops.py: the verbs ``up``, ``start``, ``stop``, ``down``, ``sql`` (the CLI calls these), journaled.
- upgrade.py: ``local upgrade``: the remote upgrade's path and gates, node by node, journaled.
- report.py: the status, list and history documents.
"""
