"""Converging hosts: `deploy` (probe -> plan -> apply -> record in `deploy.py`; the verb's whole flow,
dry run / no-op / confirm / apply, in `deploy_flow.py`), `check` (preflight), what deploy must not take
over (`adopt`), and the firewall rules' removal."""
