"""Database access (the "store"): SQLAlchemy models, alembic migrations, queries.

Nothing here knows about gRPC; callers pass and receive domain values.
"""
