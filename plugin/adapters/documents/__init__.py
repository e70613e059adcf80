"""Documents: server-side Jinja2 HTML rendered to PDF by WeasyPrint (``pdf.render``).

WeasyPrint is imported lazily, on the first render, so the web app and the CLI start
without paying its import (~1 s). Rendering fetches nothing from the network or the
file system: ``pdf.SafeFetcher`` serves only ``data:`` URLs and the package's own
files under ``static/`` (``app-static:<path>``).
"""
