"""the desk's badge counted from an index: open tickets by last action

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 09:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_tickets_open_last_action', 'tickets', ['last_action'], unique=False,
                    sqlite_where=sa.text("status = 'open'"), postgresql_where=sa.text("status = 'open'"))


def downgrade() -> None:
    op.drop_index('ix_tickets_open_last_action', table_name='tickets')
