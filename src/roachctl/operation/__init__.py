"""The context of one remote operation — layer `operation` (rank 5: imports facts/release/tls and below),
below both `engine/` and `cluster/`; `local/` uses its journal too.

- session.py: `open_session(topology, home, ...)` -> `Session`: the topology, the cluster's home, the
  multiplexed ssh transport, the two-stage Ctrl-C controller; the lock and the journal's Operation for
  mutating commands.
- home.py: `ClusterHome`, the controller-side files of one cluster (`<home>/clusters/<name>/`): CA,
  node and operator certificates, `state.json`, the journal.
- journal.py: `Operation` (begin / step / end records, JSON lines) and reading them back for `history`.
- lock.py: one mutating operation per cluster, in the home and on every host.
- homeexport.py: `home export` / `home import`: a cluster's home entry as one encrypted file.
"""
