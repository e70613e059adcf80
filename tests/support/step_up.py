"""The page that sends a signer on to confirm who they are at their identity provider or
EHR (a form post may not be redirected off-site under the app's CSP, form-action 'self'),
read as a browser follows it."""
from __future__ import annotations

import html
import re
from typing import Any


def continue_url(response: Any) -> str:
    """Where the page goes on to, from its link and its refresh alike (they must agree)."""
    assert response.status_code == 200, response.get_data(as_text=True)
    page = response.get_data(as_text=True)
    link = html.unescape(re.search(r'id="continue" href="([^"]+)"', page).group(1))
    refresh = html.unescape(re.search(r'content="0;url=([^"]+)"', page).group(1))
    assert link == refresh
    return link
