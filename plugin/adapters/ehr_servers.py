"""What deliveries learned of each EHR, kept in the database for every worker: the way
of sending that last worked (``auto`` starts there) and the transaction entry limit the
EHR's refusals named (``EHR_TRANSACTION_MAX_ENTRIES`` overrides it). Keyed by the EHR's
FHIR base as ``smart.base_key`` spells it.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import exc, insert, select, update

from . import engine as engine_mod
from .smart import base_key
from .store import Store
from .tables import ehr_servers

__all__ = ["Learned", "recall"]


@dataclass
class Learned:
    """One EHR's row, read once per batch; ``remember`` writes it (``ehr.Memory``)."""

    store: Store
    base: str
    way: str | None = None
    limit: int | None = None

    def remember(self, way: str | None, limit: int | None) -> None:
        self.way, self.limit = way, limit
        now = dt.datetime.now(dt.timezone.utc)
        values = {"way": way, "max_entries": limit, "updated": now}
        for _ in range(2):  # two workers learning at once: the second updates
            try:
                with engine_mod.writer(self.store.engine).begin() as conn:
                    changed = conn.execute(update(ehr_servers).where(
                        ehr_servers.c.base == self.base).values(**values)).rowcount
                    if not changed:
                        conn.execute(insert(ehr_servers).values(base=self.base, **values))
                return
            except exc.IntegrityError:
                continue


def recall(store: Store, base_url: str) -> Learned:
    """What was learned of the EHR at ``base_url`` (nothing yet: both None)."""
    base = base_key(base_url)
    with store.engine.connect() as conn:
        row = conn.execute(select(ehr_servers).where(ehr_servers.c.base == base)).first()
    if row is None:
        return Learned(store, base)
    return Learned(store, base, way=row.way, limit=row.max_entries)
