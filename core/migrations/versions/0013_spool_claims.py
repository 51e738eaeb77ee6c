"""spool rows claimed by one runner at a time, under a lease

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 10:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('spool', sa.Column('claimed_by', sa.String(length=64), nullable=True))
    op.add_column('spool', sa.Column('lease_until', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('spool') as batch:
        batch.drop_column('lease_until')
        batch.drop_column('claimed_by')
