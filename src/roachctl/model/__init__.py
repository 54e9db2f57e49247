"""What the user asked for: the topology file, validated — layer `model` (rank 1: imports the base only).

- loader.py: `load_topology(path)`: YAML 1.2 with positions; every problem at once as file:line:col +
  hint (`TopologyError`, exit 2); `load_text`, `parse_data`, `read_topology_file` (size and depth limits).
- topology.py: `Topology`, frozen pydantic models; `node_configs()` gives each node with defaults applied.
- types.py: field types that reject bad input with a message and a hint.
- validate.py: `check_topology(t)`: the cross-field checks (run by the loader).
- schema.py: `render_schema()`: the JSON schema committed at schema/topology.schema.json.
- netaddr.py: `host:port` for every address handed to cockroach, ssh or a URL: one rule.
- arch.py: the CPU architectures roachctl deploys, and the uname → release-arch mapping.
- versions.py: the oldest CockroachDB release roachctl can operate, and why.
- facts.py: `HostFacts`, what roachctl observed on a host (the input of `plan.diff`).
- topoedit.py / addnode.py: edit a topology file's text in place, comments and layout kept.
"""
