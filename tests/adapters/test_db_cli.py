"""``python -m plugin db upgrade`` as an operator runs it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from plugin.__main__ import main

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "plugin", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


def test_db_upgrade_creates_the_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'exam.sqlite3'}"
    result = run("db", "upgrade", env={"PLUGIN_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stderr
    engine = create_engine(url)
    try:
        assert {"patients", "exams", "revisions", "alembic_version"} <= set(
            inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert run("db", "upgrade", env={"PLUGIN_DATABASE_URL": url}).returncode == 0


def test_an_unusable_database_url_is_one_line_and_exit_4() -> None:
    result = run("db", "upgrade", env={"PLUGIN_DATABASE_URL": "not a url"})
    assert (result.returncode, result.stdout) == (4, "")
    assert result.stderr == ("error: DATABASE_URL is not a database URL (expected e.g. "
                             "postgresql+psycopg://user@host/db)\n")


@pytest.mark.parametrize(("url", "message"), [
    ("nosuchdb://host/db", "unsupported database or driver 'nosuchdb'"),
    ("postgresql+psycopg://nobody:s3cret@127.0.0.1:1/none", "cannot upgrade the database: "),
    ("sqlite:////nonexistent-dir/sub/exam.sqlite3", "cannot upgrade the database: "),
])
def test_unusable_databases_are_one_line_and_exit_4(monkeypatch, capsys, url, message) -> None:
    monkeypatch.setenv("PLUGIN_DATABASE_URL", url)
    assert main(["db", "upgrade"]) == 4
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert "s3cret" not in err


def test_db_needs_a_subcommand() -> None:
    result = run("db", env={})
    assert result.returncode == 2 and "SUBCOMMAND" in result.stderr
