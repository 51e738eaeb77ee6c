"""ticket search (SQLite FTS5, PostgreSQL full-text) and triage indexes

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 17:45:00

The search index is not part of the ORM models: an FTS5 table is virtual, and the PostgreSQL
tsvector column is generated. core.search names both (UNMAPPED_SEARCH_OBJECTS).
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

ACTIVE = "status IN ('open', 'waiting')"  # core.models.ACTIVE_STATUSES_SQL

# External content: the text stays in `messages` alone; triggers keep the index in step.
SQLITE_SEARCH = [
    """CREATE VIRTUAL TABLE message_search USING fts5(
           subject, text, content='messages', content_rowid='id',
           tokenize='porter unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER message_search_insert AFTER INSERT ON messages BEGIN
           INSERT INTO message_search(rowid, subject, text) VALUES (new.id, new.subject, new.text);
       END""",
    """CREATE TRIGGER message_search_delete AFTER DELETE ON messages BEGIN
           INSERT INTO message_search(message_search, rowid, subject, text)
           VALUES ('delete', old.id, old.subject, old.text);
       END""",
    """CREATE TRIGGER message_search_update AFTER UPDATE OF subject, text ON messages BEGIN
           INSERT INTO message_search(message_search, rowid, subject, text)
           VALUES ('delete', old.id, old.subject, old.text);
           INSERT INTO message_search(rowid, subject, text) VALUES (new.id, new.subject, new.text);
       END""",
    "INSERT INTO message_search(message_search) VALUES ('rebuild')",
]

# to_tsvector refuses more than 1 MB of text: the first 100,000 characters are what is searched.
POSTGRES_SEARCH = [
    """ALTER TABLE messages ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
           to_tsvector('english', left(coalesce(subject, '') || ' ' || coalesce(text, ''), 100000))) STORED""",
    "CREATE INDEX ix_messages_search_vector ON messages USING gin (search_vector)",
]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in SQLITE_SEARCH if dialect == "sqlite" else POSTGRES_SEARCH:
        op.execute(statement)
    op.create_index('ix_tickets_active_updated', 'tickets', ['updated_at', 'id'],
                    sqlite_where=sa.text(ACTIVE), postgresql_where=sa.text(ACTIVE))
    op.create_index('ix_tickets_created', 'tickets', ['created_at'])
    op.create_index('ix_tickets_owner', 'tickets', ['owner_id'])


def downgrade() -> None:
    op.drop_index('ix_tickets_owner', table_name='tickets')
    op.drop_index('ix_tickets_created', table_name='tickets')
    op.drop_index('ix_tickets_active_updated', table_name='tickets')
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER message_search_{trigger}")
        op.execute("DROP TABLE message_search")
    else:
        op.execute("DROP INDEX ix_messages_search_vector")
        op.execute("ALTER TABLE messages DROP COLUMN search_vector")
