"""The record's use cases, between the edges and the pure packages.

Begin, save, sign, amend and queue for delivery need the pure core and the engine *and*
the store: they live here, and the tablet, the API, the CLI and the workers call them.
Arrows: web/CLI -> record -> adapters, decision -> core (``plugin/core`` never imports
``plugin/decision``; tests/test_architecture.py checks it).
"""
