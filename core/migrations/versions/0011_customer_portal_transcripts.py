"""the customer portal's sign-in links and sessions; encrypted transcripts and the groups that keep them

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('customer_sign_in_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('address_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['address_id'], ['addresses.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_index('ix_customer_sign_in_links_address_id', 'customer_sign_in_links', ['address_id'], unique=False)
    op.create_table('customer_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('address_id', sa.Integer(), nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(), nullable=False),
    sa.Column('ended_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['address_id'], ['addresses.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_index('ix_customer_sessions_address_id', 'customer_sessions', ['address_id'], unique=False)
    op.create_table('transcripts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=64), nullable=False),
    sa.Column('nonce', sa.LargeBinary(), nullable=False),
    sa.Column('ciphertext', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('public_id')
    )
    op.create_index('ix_transcripts_created_at', 'transcripts', ['created_at'], unique=False)
    with op.batch_alter_table('groups') as batch:
        batch.add_column(sa.Column('transcripts', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column('transcript_address', sa.String(length=320), server_default='', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('groups') as batch:
        batch.drop_column('transcript_address')
        batch.drop_column('transcripts')
    op.drop_table('transcripts')
    op.drop_table('customer_sessions')
    op.drop_table('customer_sign_in_links')
