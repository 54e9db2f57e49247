"""Running commands on hosts: the OpenSSH executor (ControlMaster, BatchMode, sudo -n, quoting),
the local executor, fan-out with two-stage Ctrl-C, and process handling. Imports only `errors`."""
