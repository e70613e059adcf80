"""The CDS Hooks jti replay cache is shared by every app process through the database.

Two ``create_app`` on one database stand for two gunicorn workers (or two hosts behind a
load balancer); threads racing on PostgreSQL stand for simultaneous calls.
"""
from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from plugin import create_app
from plugin.adapters import replay, store
from plugin.adapters.store import Store
from plugin.adapters.tables import cds_jtis
from tests.support import cds
from tests.support.cds import PATIENT_VIEW
from tests.support.jwt_keys import CdsClient

NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def ehr() -> CdsClient:
    return CdsClient()


@pytest.fixture()
def two_apps(database_url: str, ehr: CdsClient):  # type: ignore[no-untyped-def]
    """Two app instances (two processes' worth) on one SQLite file or PostgreSQL db."""
    apps = [create_app({"TESTING": True, "SECRET_KEY": "test-secret",
                        "DATABASE_URL": database_url, **cds.settings(ehr)}) for _ in range(2)]
    yield apps
    for app in apps:
        store.from_app(app).dispose()


@pytest.fixture()
def shared(database_url: str):  # type: ignore[no-untyped-def]
    made = Store(database_url)
    made.upgrade()
    yield made
    made.dispose()


def _rows(s: Store) -> int:
    with s.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(cds_jtis)).scalar_one())


def test_a_token_used_on_one_app_is_refused_by_the_other(two_apps: list[Flask],
                                                          ehr: CdsClient) -> None:
    first, second = (app.test_client() for app in two_apps)
    token = ehr.sign(PATIENT_VIEW)
    assert cds.post(first, ehr, PATIENT_VIEW, cds.body("patient-view"),
                    token=token).status_code == 200
    again = cds.post(second, ehr, PATIENT_VIEW, cds.body("patient-view"), token=token)
    assert again.status_code == 401
    assert "jti already used" in cds.refusal(again)[1]
    # and a fresh token still works on the second one
    assert cds.post(second, ehr, PATIENT_VIEW, cds.body("patient-view")).status_code == 200


def test_first_use_decides_by_the_primary_key(shared: Store) -> None:
    expires = NOW + dt.timedelta(minutes=5)
    never = lambda: 1.0  # noqa: E731  (no purge in this test)
    assert replay.first_use(shared, "https://ehr.example", "j-1", expires, chance=never)
    assert not replay.first_use(shared, "https://ehr.example", "j-1", expires, chance=never)
    # the same jti from another issuer is another token
    assert replay.first_use(shared, "https://other.example", "j-1", expires, chance=never)
    assert _rows(shared) == 2


def test_expired_rows_are_purged_and_live_ones_kept(shared: Store) -> None:
    never = lambda: 1.0  # noqa: E731
    for n in range(5):
        replay.first_use(shared, "iss", f"old-{n}", NOW - dt.timedelta(minutes=10), chance=never)
    replay.first_use(shared, "iss", "live", NOW + dt.timedelta(minutes=4), chance=never)
    assert replay.purge(shared, now=NOW, limit=3) == 3  # bounded
    assert replay.purge(shared, now=NOW) == 2
    assert _rows(shared) == 1
    assert not replay.first_use(shared, "iss", "live", NOW + dt.timedelta(minutes=4))


def test_a_row_outlives_its_token_by_the_clock_skew_leeway(shared: Store) -> None:
    """A token a minute past exp still passes the exp check, so its row must stay."""
    exp = NOW - dt.timedelta(seconds=30)
    assert replay.first_use(shared, "iss", "j", exp, chance=lambda: 1.0)
    assert replay.purge(shared, now=NOW) == 0
    assert not replay.first_use(shared, "iss", "j", exp, chance=lambda: 1.0)
    assert replay.purge(shared, now=NOW + dt.timedelta(minutes=2)) == 1


def test_some_calls_purge_on_the_way(shared: Store) -> None:
    replay.first_use(shared, "iss", "old", NOW - dt.timedelta(hours=1), chance=lambda: 1.0)
    assert replay.first_use(shared, "iss", "new", NOW + dt.timedelta(minutes=5), now=NOW,
                            chance=lambda: 0.0)
    assert _rows(shared) == 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_concurrent_first_uses_on_postgresql_have_exactly_one_winner(database_url: str) -> None:
    # one Store per thread pair: separate engines and pools, as separate processes have
    stores = [Store(database_url) for _ in range(2)]
    stores[0].upgrade()
    threads_per_store = 8
    barrier = threading.Barrier(2 * threads_per_store)
    results: list[Any] = []
    lock = threading.Lock()

    def attempt(s: Store) -> None:
        barrier.wait()
        try:
            won: Any = replay.first_use(s, "https://ehr.example", "same-jti",
                                        NOW + dt.timedelta(minutes=5), chance=lambda: 1.0)
        except Exception as error:  # noqa: BLE001 (reported by the assertion below)
            won = error
        with lock:
            results.append(won)

    try:
        for round_ in range(3):
            barrier.reset()
            results.clear()
            threads = [threading.Thread(target=attempt, args=(s,))
                       for s in stores for _ in range(threads_per_store)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
            assert results.count(True) == (1 if round_ == 0 else 0), results
            assert results.count(False) == len(threads) - results.count(True), results
    finally:
        for s in stores:
            s.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_database_that_cannot_be_reached_refuses_the_call_with_503(
        database_url: str, ehr: CdsClient, postgres_server: Any, caplog) -> None:
    app = create_app({"TESTING": True, "SECRET_KEY": "test-secret",
                      "DATABASE_URL": database_url, **cds.settings(ehr)})
    try:
        postgres_server.drop_database(database_url.rsplit("/", 1)[1])
        token = ehr.sign(PATIENT_VIEW)
        response = cds.post(app.test_client(), ehr, PATIENT_VIEW, cds.body("patient-view"),
                            token=token)
        assert response.status_code == 503, response.get_data(as_text=True)
        assert cds.refusal(response)[0] == "transient"
        assert token not in caplog.text
    finally:
        store.from_app(app).dispose()
