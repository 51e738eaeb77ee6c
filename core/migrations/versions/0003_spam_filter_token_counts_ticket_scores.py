"""spam filter: token counts, ticket scores

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 16:07:25.843292
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('spam_tokens',
    sa.Column('token', sa.String(length=80), nullable=False),
    sa.Column('spam', sa.Integer(), nullable=False),
    sa.Column('ham', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('token')
    )
    op.create_table('spam_totals',
    sa.Column('verdict', sa.String(length=8), nullable=False),
    sa.Column('messages', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('verdict')
    )
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('spam_score', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('interesting_words', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('spam_training', sa.Enum('none', 'not_spam', 'spam', name='spam_training', native_enum=False, length=24), server_default='none', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('spam_training')
        batch_op.drop_column('interesting_words')
        batch_op.drop_column('spam_score')

    op.drop_table('spam_totals')
    op.drop_table('spam_tokens')
