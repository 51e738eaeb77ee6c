"""thread keys lose `referenced_by`: who answered an id is kept in parent_references, the one place read

Since rule 4c reads parent_references whether the answered mail has arrived or not, the column was
written for every referenced id and read nowhere.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 16:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('thread_keys') as batch:
        batch.drop_column('referenced_by')


def downgrade() -> None:
    with op.batch_alter_table('thread_keys') as batch:
        batch.add_column(sa.Column('referenced_by', sa.String(length=320), nullable=True))
