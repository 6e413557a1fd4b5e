"""Alembic migrations of the refundbot schema (run through storage.migrate)."""
