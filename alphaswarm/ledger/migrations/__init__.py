"""Alembic migrations of the ledger schema (run by :meth:`Ledger.ensure_schema`)."""
