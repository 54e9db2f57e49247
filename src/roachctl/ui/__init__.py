"""Human output: the stderr console, progress and per-host tables. A base layer like `errors`:
any layer may report progress through it; it imports nothing else of roachctl."""
