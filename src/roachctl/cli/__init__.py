"""Click commands, the top layer: parse options, call one function of a layer below, render the
result (`cli/app.py` is the single place that maps errors to exit codes)."""
