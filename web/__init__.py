"""The web desk: workers triage and answer tickets in a browser (Starlette, served by uvicorn).

A thin adapter like the CLI: every change is a core.desk.Helpdesk command; pages render its plain
answers with the templates under templates/web/. Nothing here decides a business rule.
"""
