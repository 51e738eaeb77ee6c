"""Jinja2 templates of every mail the helpdesk writes, each as NAME.txt.j2 and NAME.html.j2; rendered by core.compose."""
