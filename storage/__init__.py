"""Persistence: SQLAlchemy implementations of the dialogs ports, migrations and the order importer."""
