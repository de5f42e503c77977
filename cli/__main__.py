"""`python -m cli ...` is `unilseg ...` (the Makefile uses it: no reliance on the console script
being on the PATH, and no runpy warning, which `python -m cli.stack` gave because the package
imports its stack module)."""

from cli import main

main(prog_name="unilseg")
