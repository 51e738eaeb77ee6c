"""proof of sender and order-free threads: who each mail went to, reply-token keys, parents awaited, merged masks, content digests

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 21:00:00

Mail already in the outbox is entered in sent_recipients with its recipients, so an answer to a
mail sent before the upgrade still proves its sender.
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sent_recipients',
    sa.Column('message_id', sa.String(length=998), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.Column('sent_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('message_id', 'email')
    )
    op.create_index('ix_sent_recipients_ticket_email_at', 'sent_recipients', ['ticket_id', 'email', 'sent_at'],
                    unique=False)
    op.create_table('parent_references',
    sa.Column('message_id', sa.String(length=998), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('referenced_by', sa.String(length=320), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('message_id', 'ticket_id', 'referenced_by')
    )
    op.create_index('ix_parent_references_ticket_id', 'parent_references', ['ticket_id'], unique=False)
    op.create_table('merged_masks',
    sa.Column('mask', sa.String(length=16), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('merged_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('mask')
    )
    op.create_index(op.f('ix_merged_masks_ticket_id'), 'merged_masks', ['ticket_id'], unique=False)
    op.create_table('helpdesk_secrets',
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('value', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    with op.batch_alter_table('thread_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('referenced_by', sa.String(length=320), nullable=True))
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('content_digest', sa.String(length=64), nullable=True))
    _enter_queued_recipients()


def _enter_queued_recipients() -> None:
    bind = op.get_bind()
    outbox = sa.table('outbox', sa.column('message_id'), sa.column('ticket_id'), sa.column('rcpt_tos', sa.JSON),
                      sa.column('created_at', sa.DateTime))
    sent = sa.table('sent_recipients', sa.column('message_id'), sa.column('email'), sa.column('ticket_id'),
                    sa.column('sent_at', sa.DateTime))
    rows = [{"message_id": message_id, "email": email, "ticket_id": ticket_id, "sent_at": created_at}
            for message_id, ticket_id, rcpt_tos, created_at in bind.execute(
                sa.select(outbox.c.message_id, outbox.c.ticket_id, outbox.c.rcpt_tos, outbox.c.created_at))
            for email in dict.fromkeys(rcpt_tos or [])]
    if rows:
        op.bulk_insert(sent, rows)


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('content_digest')
    with op.batch_alter_table('thread_keys', schema=None) as batch_op:
        batch_op.drop_column('referenced_by')
    op.drop_table('helpdesk_secrets')
    op.drop_index(op.f('ix_merged_masks_ticket_id'), table_name='merged_masks')
    op.drop_table('merged_masks')
    op.drop_index('ix_parent_references_ticket_id', table_name='parent_references')
    op.drop_table('parent_references')
    op.drop_index('ix_sent_recipients_ticket_email_at', table_name='sent_recipients')
    op.drop_table('sent_recipients')
