"""Converging hosts: `deploy` (probe -> plan -> confirm -> apply -> record), `check` (preflight),
what deploy must not take over (`adopt`), and the firewall rules' removal."""
