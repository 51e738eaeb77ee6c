"""What helpdesk workers use: the `postdesk` command and (later) mail commands."""
