"""Local clusters: N secure CockroachDB nodes on this machine, supervised by roachctl.

Modules, one job each (imports point downward: ops → cluster → client/process/state/ports):

- ``layout``   where a cluster lives: ``<home>/local/<name>/{ca,certs,nodes/n<i>,state.json}``
- ``ports``    choosing SQL/RPC and HTTP ports (pure planner + an injected "in use" probe)
- ``state``    the atomic JSON state file: ports, dirs, pid + create_time + argv, init done
- ``certs``    CA (kept in ``ca/``), node and root client certs via ``roachctl.tls``
- ``process``  spawn in a new session, re-identify a recorded pid before signalling it
- ``client``   /health probes and ``cockroach`` client commands (init, node drain/status)
- ``interrupts``  first Ctrl-C = graceful, second = at once
- ``cluster``  `LocalCluster`: bring up (spawn, init once, wait ready) and quorum-safe stop
- ``report``   status/list documents
- ``ops``      the verbs: ``up``, ``start``, ``stop``, ``down``, ``sql`` (the CLI calls these)
"""
