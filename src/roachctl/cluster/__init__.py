"""CockroachDB procedures on a deployed cluster: start/init, the quorum-ordered stop, rolling
restart, status, sql, destroy; the node client (ephemeral certs) and the readiness probe."""
