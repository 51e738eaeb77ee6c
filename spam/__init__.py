"""The spam filter: tokens, shared counts in the database, scoring and training (see spam/tokens.py)."""
