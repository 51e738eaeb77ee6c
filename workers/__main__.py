"""`python -m workers` runs the `postdesk` command (tests use it to avoid PATH assumptions)."""

from workers.cli import main

main(prog_name="postdesk")
