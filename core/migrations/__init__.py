"""Alembic migrations of the postdesk schema."""
