"""the desk's badge counted from an index: tickets by status and last action

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 09:40:00
"""
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_tickets_status_last_action', 'tickets', ['status', 'last_action'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_tickets_status_last_action', table_name='tickets')
