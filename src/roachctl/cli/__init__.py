"""Click commands, the top layer: parse options, call one function of a layer below, render the
result; each function at most 20 lines (tests/unit/test_cli_sizes.py). `app.py` is the single
place that maps errors to exit codes and takes the run's Environment (`run(argv, env)`);
`remote.py`/`local.py` hold the commands, `common.py` the toolkit they share (context, session, results, journal table), `render.py` shared rendering, `globalopts.py` global
options after the subcommand and completion. The README's "Writing a command" has the pattern."""
