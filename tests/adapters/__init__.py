"""Tests of the I/O edges: the exam store on SQLite and PostgreSQL, its migrations and CLI."""
