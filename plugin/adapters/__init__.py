"""I/O edges: the exam store (SQLAlchemy, Alembic); EHR delivery and documents to come."""
