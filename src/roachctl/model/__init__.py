"""model layer: what the user asked for (the topology file), validated.

- `loader.load_topology(path) -> Topology`: YAML 1.2; raises `TopologyError` carrying every
  problem as file:line:col + hint (exit 2), `UsageError` when the file cannot be read.
- `loader.load_text(text, source)`, `loader.parse_data(data, source)`: the same from memory.
- `loader.read_topology_file(path) -> bytes`: the file's bytes within the loader's limits (a
  regular file of at most 1 MiB, UTF-8); the YAML itself may hold no aliases and nest at most 32 deep.
- `topology.Topology`: frozen pydantic model; `node_configs()` / `node_config(host)` give each node
  with defaults applied (`NodeConfig`); `effective_cluster_name` is cockroach's `--cluster-name`.
- `validate.check_topology(t) -> list[Issue]`: the cross-field checks (run by the loader).
- `schema.render_schema()`: the JSON schema committed at schema/topology.schema.json.
"""
