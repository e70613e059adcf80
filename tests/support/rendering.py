"""The documents of signed revisions, rendered in the test's own process: what the
renderer process beside the web workers (``serve``) does after each signature."""
from __future__ import annotations

from typing import Any

from plugin.adapters import store as store_mod
from plugin.record import freeze


def render_pending(app: Any) -> int:
    """Render every pending revision's documents now; how many revisions."""
    return freeze.render_pending(store_mod.from_app(app), worker_id="tests",
                                 lease_seconds=60)
