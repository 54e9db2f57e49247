"""Talking to the person: the run's Environment (`env.py`: streams, --json/--yes/--verbose, colour,
prompts; after HTTPie's), the stderr console, progress and per-host tables. A base layer like
`errors`: any layer may take an Environment; it imports nothing else of roachctl but `errors`."""
