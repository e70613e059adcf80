"""Every setting in one place, and the order they are read in.

Defaults live in ``DEFAULTS``; ``create_app`` then overlays the instance folder's
``config.py`` and ``PLUGIN_*`` environment variables (``PLUGIN_MAX_CONTENT_LENGTH=...``),
or, in tests, the ``test_config`` mapping. Nothing else in the package reads the
environment, and importing this module does no I/O.
"""
from __future__ import annotations

from pathlib import Path

#: The checkout that holds ``plugin/``, ``questionnaires/`` and ``mappings/``. The data
#: folders sit beside the package (not inside it) so clinicians can review them as files.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEFAULTS: dict[str, object] = {
    # Where the knowledge lives; every file is loaded and checked once, at start-up.
    "QUESTIONNAIRES_DIR": str(PROJECT_ROOT / "questionnaires"),
    "MAPPINGS_DIR": str(PROJECT_ROOT / "mappings"),
    # Request bodies above this many bytes are refused with an OperationOutcome (413).
    # A complete exam as a QuestionnaireResponse is ~60 KB; 1 MiB leaves ample room.
    "MAX_CONTENT_LENGTH": 1024 * 1024,
    # Public base URL of the FHIR API, used in the CapabilityStatement. Empty: taken
    # from the request (correct behind a proxy only with ProxyFix-style headers).
    "FHIR_BASE_URL": "",
    # Keep JSON responses in the order FHIR readers expect (resourceType first).
    "JSON_SORT_KEYS": False,
}
