"""`python -m roachctl` runs the CLI."""

from roachctl.cli.app import main

main()
