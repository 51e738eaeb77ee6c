"""scheduler: group auto-close days, due-time and quarantine indexes, job leases

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 11:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('job_leases',
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('next_run_at', sa.DateTime(), nullable=False),
    sa.Column('holder', sa.String(length=100), nullable=True),
    sa.Column('lease_until', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('name')
    )
    with op.batch_alter_table('groups', schema=None) as batch_op:
        batch_op.add_column(sa.Column('auto_close_days', sa.Integer(), nullable=True))
    op.create_index('ix_tickets_status_waiting_until', 'tickets', ['status', 'waiting_until'], unique=False)
    op.create_index(op.f('ix_quarantine_quarantined_at'), 'quarantine', ['quarantined_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_quarantine_quarantined_at'), table_name='quarantine')
    op.drop_index('ix_tickets_status_waiting_until', table_name='tickets')
    with op.batch_alter_table('groups', schema=None) as batch_op:
        batch_op.drop_column('auto_close_days')
    op.drop_table('job_leases')
