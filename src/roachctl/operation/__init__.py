"""The operation context: what one remote command works with, below both `engine/` and `cluster/`.

- `session`: `open_session(topology, home, ...)` -> `Session` (topology, the cluster's home, the
  multiplexed ssh transport, the two-stage Ctrl-C/SIGTERM controller), holding the operation lock
  for mutating commands.
- `home`: `ClusterHome`, the controller-side files of one cluster (`<home>/clusters/<name>/`):
  CA, node and operator certificates, `state.json`, the journal.
- `lock`: one mutating operation per cluster, in the home and on every host.
"""
