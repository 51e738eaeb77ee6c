"""Makes the test kit's fixtures visible to every test."""

from testkit import config_path, daemon, database, db_url, postgres_url, settings  # noqa: F401
