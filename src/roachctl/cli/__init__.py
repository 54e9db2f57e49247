"""Click commands — layer `cli` (rank 9, the top): parse options, call one function of a layer below,
render the result; each function at most 20 lines (tests/unit/test_cli_sizes.py). The README's
"Writing a command" has the pattern.

- app.py: the root group, command registration, the single catch site (error → exit code).
- globalopts.py: global options after the subcommand, and shell completion.
- context.py: AppContext, the options every command sees, and the default home.
- common.py: the toolkit every command shares (context, checked topology, session, results, journal table).
- lazy.py: the root group that imports a command's module on first use (fast start-up).
- render.py: shared rendering (where to connect, a deploy's result, an upgrade's report).
- remote.py: start, stop, restart, sql, list, history.
- deploying.py: check, deploy, destroy (the deploy engine and release layer load only for them).
- status.py: status.
- shape.py / scalein.py: scale-out and replace / scale-in.
- upgrade.py / resume.py / prune.py: upgrade, finalize, rollback / resume / prune.
- certs.py: certs status|rotate, home export|import.
- diagnose.py: doctor, logs, debug-zip.
- local.py / localupgrade.py: `roachctl local ...` / `roachctl local upgrade`.
"""
