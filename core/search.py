"""Full-text search of ticket conversations: SQLite FTS5 or PostgreSQL's tsvector, one query shape.

The index itself is made by migration 0006 and lives outside the ORM models; the names below are
what the model-against-migration check must leave aside.
"""

from __future__ import annotations

import re

from core.errors import UsageError

# The FTS5 table, its shadow tables, and PostgreSQL's generated column and its index.
UNMAPPED_SEARCH_OBJECTS = frozenset({
    "message_search", "message_search_data", "message_search_idx", "message_search_docsize",
    "message_search_config", "search_vector", "ix_messages_search_vector",
})
MAX_TERMS = 16
_TERM = re.compile(r"\w+", re.UNICODE)


def search_terms(text: str) -> list[str]:
    """The words to find, all required; punctuation and query syntax carry no meaning."""
    terms = list(dict.fromkeys(t.lower() for t in _TERM.findall(text)))[:MAX_TERMS]
    if not terms:
        raise UsageError(f"nothing to search for in {text!r}: give at least one word")
    return terms


def fts5_query(terms: list[str]) -> str:
    """Every term quoted, so none is read as FTS5 syntax (AND, NEAR, column filters)."""
    return " ".join('"' + term.replace('"', '""') + '"' for term in terms)


def tsquery_text(terms: list[str]) -> str:
    """Input for plainto_tsquery, which ANDs the words and ignores any operator characters."""
    return " ".join(terms)
