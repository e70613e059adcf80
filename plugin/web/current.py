"""What a request works with: the app's store, its knowledge and the time now.

One home for three one-liners every blueprint needs, so a view reads
``current.store()`` rather than reaching into ``current_app.extensions`` its own way.
The time is read here (aware UTC) so every write of one request dates itself alike.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from flask import current_app

from .. import knowledge
from ..adapters import store as store_mod


def store() -> store_mod.Store:
    """The app's store (``adapters.store``, made once by ``create_app``)."""
    return store_mod.from_app(current_app)


def kb() -> Any:
    """The app's frozen KnowledgeBase, loaded once at start-up."""
    return current_app.extensions[knowledge.EXTENSION_KEY]


def now() -> dt.datetime:
    """The time now, aware UTC."""
    return dt.datetime.now(dt.timezone.utc)
