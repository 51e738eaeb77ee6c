"""imap imports: which server messages (account, folder, UIDVALIDITY, UID) were committed to the spool

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 10:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('imap_imports',
    sa.Column('account', sa.String(length=320), nullable=False),
    sa.Column('folder', sa.String(length=255), nullable=False),
    sa.Column('uid_validity', sa.BigInteger(), nullable=False),
    sa.Column('uid', sa.BigInteger(), nullable=False),
    sa.Column('imported_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('account', 'folder', 'uid_validity', 'uid')
    )


def downgrade() -> None:
    op.drop_table('imap_imports')
