"""Jinja2 templates of every mail the daemon writes; rendered by core.outgoing."""
