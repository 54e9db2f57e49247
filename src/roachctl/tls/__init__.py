"""CockroachDB's certificate recipe — layer `tls` (rank 4: imports only the base, `fsutil`).

- pki.py: CA, node and client certificates, built in-process following CockroachDB's own recipe.
- store.py: their files on disk: node and client certs dirs, the CA key kept apart.
- inspect.py: what a certificate says and what is wrong with it (pure; behind `certs status`).
"""
