"""a group's language: its mails are written from the templates of that language when there are some

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 05:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('groups') as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=16), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('groups') as batch_op:
        batch_op.drop_column('language')
