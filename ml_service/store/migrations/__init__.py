"""Alembic migrations of the metadata schema, shipped inside the package so an installed
service can run them (`python -m ml_service migrate`)."""
