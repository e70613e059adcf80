"""FrozenRow inputs and rendered documents of signed revisions (tables ``frozen_inputs``
and ``documents``): the SQL of ``record.freeze``.

``Store.sign(..., frozen=...)`` writes a revision's frozen inputs in the signature's own
transaction; rendering happens later, outside the request (a renderer process beside
the web workers, the ``documents`` command, or the delivery worker), in three steps:

1. ``claim`` one revision whose documents are still to be rendered: it is taken under a
   lease (``claimed_by``, ``claimed_until``; PostgreSQL ``FOR UPDATE SKIP LOCKED``,
   SQLite ``BEGIN IMMEDIATE``). A claim whose lease ran out (its renderer died) is
   claimable again: a crashed render is picked up, never lost.
2. render (no transaction open: a render takes a few hundred milliseconds);
3. ``finish``: the documents, the revision marked rendered and the delivery's
   attachments filled with those very bytes, in one transaction, only while the claim is
   still this renderer's (a late renderer whose lease ran out changes nothing).

The outbox does not claim a delivery whose revision's documents are pending
(``pending_for``), so the EHR gets exactly the stored bytes.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, insert, or_, select, update

from . import engine as engine_mod
from .store import Store, _key
from .tables import documents, frozen_inputs, outbox

__all__ = ["Claim", "FrozenRow", "StoredDocument", "claim", "document", "failed", "finish",
           "pending", "pending_for", "read", "rendered"]

#: ``last_error`` is cut to this length (an exception's class and a short reason).
ERROR_LENGTH = 300


@dataclass(frozen=True)
class FrozenRow:
    """A revision's frozen inputs as stored, and whether its documents exist yet."""

    exam_id: str
    revision: int
    knowledge_version: str
    inputs: Mapping[str, Any]
    rendered_at: dt.datetime | None


@dataclass(frozen=True)
class Claim:
    """A render taken by ``worker_id`` until ``claimed_until``."""

    exam_id: str
    revision: int
    inputs: Mapping[str, Any]
    worker_id: str
    attempts: int


@dataclass(frozen=True)
class StoredDocument:
    """One rendered document: its bytes, media type and SHA-256 (hex)."""

    kind: str
    media_type: str
    sha256: str
    content: bytes


def pending_for() -> Any:
    """SQL: the outbox row's revision still waits for its documents."""
    return exists(select(frozen_inputs.c.exam_id).where(
        frozen_inputs.c.exam_id == outbox.c.exam_id,
        frozen_inputs.c.revision == outbox.c.revision,
        frozen_inputs.c.rendered_at.is_(None)))


def read(store: Store, exam_id: str, revision: int) -> FrozenRow | None:
    """The revision's frozen inputs; None for a revision signed before they existed."""
    key = _key(exam_id, "exam")
    with store.engine.connect() as conn:
        row = conn.execute(select(frozen_inputs).where(
            frozen_inputs.c.exam_id == key, frozen_inputs.c.revision == revision)).one_or_none()
    if row is None:
        return None
    return FrozenRow(row.exam_id, row.revision, row.knowledge_version, row.inputs, row.rendered_at)


def rendered(store: Store, exam_id: str, revision: int) -> bool | None:
    """Whether the revision's documents exist; None: it has no frozen inputs."""
    key = _key(exam_id, "exam")
    with store.engine.connect() as conn:
        row = conn.execute(select(frozen_inputs.c.rendered_at).where(
            frozen_inputs.c.exam_id == key, frozen_inputs.c.revision == revision)).one_or_none()
    return None if row is None else row.rendered_at is not None


def document(store: Store, exam_id: str, revision: int, kind: str) -> StoredDocument | None:
    key = _key(exam_id, "exam")
    with store.engine.connect() as conn:
        row = conn.execute(select(documents).where(
            documents.c.exam_id == key, documents.c.revision == revision,
            documents.c.kind == kind)).one_or_none()
    if row is None:
        return None
    return StoredDocument(row.kind, row.media_type, row.sha256, bytes(row.content))


def claim(store: Store, worker_id: str, lease_seconds: float, *,
          now: dt.datetime | None = None) -> Claim | None:
    """The oldest revision whose documents are due (never claimed, or its claim ran
    out), now claimed by ``worker_id``; None when there is none."""
    now = now or _now()
    due = and_(frozen_inputs.c.rendered_at.is_(None),
               or_(frozen_inputs.c.claimed_until.is_(None),
                   frozen_inputs.c.claimed_until < now))
    pick = (select(frozen_inputs.c.exam_id, frozen_inputs.c.revision).where(due)
            .order_by(frozen_inputs.c.created).limit(1).with_for_update(skip_locked=True))
    with engine_mod.writer(store.engine).begin() as conn:
        picked = conn.execute(pick).one_or_none()
        if picked is None:
            return None
        row = conn.execute(
            update(frozen_inputs).where(frozen_inputs.c.exam_id == picked.exam_id,
                                        frozen_inputs.c.revision == picked.revision)
            .values(claimed_by=worker_id,
                    claimed_until=now + dt.timedelta(seconds=lease_seconds),
                    render_attempts=frozen_inputs.c.render_attempts + 1)
            .returning(*frozen_inputs.c)).one()
    return Claim(row.exam_id, row.revision, row.inputs, worker_id, row.render_attempts)


def finish(store: Store, job: Claim, rendered: Mapping[str, tuple[str, bytes]],
           fill: Callable[[Mapping[str, Any]], Mapping[str, Any]], *,
           now: dt.datetime | None = None) -> bool:
    """Store ``rendered`` (kind -> (media type, bytes)) as the revision's documents and
    ``fill`` the revision's queued delivery (if any) with them, in one transaction.
    False (nothing written) when the claim is no longer this renderer's."""
    now = now or _now()
    with engine_mod.writer(store.engine).begin() as conn:
        done = conn.execute(update(frozen_inputs).where(
            frozen_inputs.c.exam_id == job.exam_id, frozen_inputs.c.revision == job.revision,
            frozen_inputs.c.rendered_at.is_(None), frozen_inputs.c.claimed_by == job.worker_id,
            frozen_inputs.c.render_attempts == job.attempts)
            .values(rendered_at=now, claimed_by=None, claimed_until=None, last_error=None))
        if not done.rowcount:
            return False
        for kind, (media_type, content) in rendered.items():
            conn.execute(insert(documents).values(
                exam_id=job.exam_id, revision=job.revision, kind=kind, media_type=media_type,
                sha256=hashlib.sha256(content).hexdigest(), content=content, created=now))
        queued = conn.execute(select(outbox.c.id, outbox.c.payload).where(
            outbox.c.exam_id == job.exam_id, outbox.c.revision == job.revision)).one_or_none()
        if queued is not None:
            conn.execute(update(outbox).where(outbox.c.id == queued.id)
                         .values(payload=dict(fill(queued.payload)), updated=now))
    return True


def failed(store: Store, job: Claim, error: str, retry_seconds: float, *,
           now: dt.datetime | None = None) -> None:
    """The render failed: tried again after ``retry_seconds`` (the claim is kept until
    then), with the reason kept for ``documents --pending`` to show."""
    now = now or _now()
    with engine_mod.writer(store.engine).begin() as conn:
        conn.execute(update(frozen_inputs).where(
            frozen_inputs.c.exam_id == job.exam_id, frozen_inputs.c.revision == job.revision,
            frozen_inputs.c.claimed_by == job.worker_id)
            .values(claimed_until=now + dt.timedelta(seconds=retry_seconds),
                    last_error=error[:ERROR_LENGTH]))


def pending(store: Store) -> int:
    """How many revisions still wait for their documents."""
    from sqlalchemy import func

    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(frozen_inputs)
                            .where(frozen_inputs.c.rendered_at.is_(None))).scalar_one()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
