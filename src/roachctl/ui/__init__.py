"""Talking to the person — layer `ui` (rank 0, a base like `errors`: imports nothing of roachctl but
`errors`; any layer may take an Environment).

- env.py: the run's Environment: streams, terminal facts, --json/--yes/--verbose, colour, prompts
  (after HTTPie's).
- console.py: the current Environment for code that has none passed in; human output on stderr.
- tables.py: per-host result tables: one row per host, the outcome, what to do about failures.
- progress.py: byte progress for long transfers: a bar on a terminal, plain lines otherwise.
"""
