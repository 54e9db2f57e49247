"""Running commands on hosts — layer `exec` (rank 3: imports only the base,
`errors` and `fsutil`).

- command.py: `Command`, one program invocation as an argv list, quoted for a POSIX shell.
- base.py: the Executor protocol (run / put / put_stream / get) and shared file transfer.
- openssh.py: the system `ssh`, one multiplexed ControlMaster per host, BatchMode, `sudo -n`.
- local.py: the Executor protocol over local subprocesses (local mode and tests).
- fake.py: a scripted, recording Executor with an in-memory file system, for unit tests above exec.
- fanout.py: one async step on many hosts at once, with caps, failure collection and two-stage Ctrl-C.
- proc.py: one child process to completion: stdin from bytes or a file, output captured, bounded.
"""
