"""HTML -> PDF with WeasyPrint, fetching nothing but our own static files.

``render(html)`` turns a document built from our Jinja2 templates (autoescaped, so
patient free text cannot add tags or URLs) into PDF bytes. Two safety rules:

* **WeasyPrint is imported lazily**, inside ``render`` (and on first access to
  ``SafeFetcher``); importing this module does not import it.
* **Nothing is fetched** except ``data:`` URLs and ``app-static:<relative path>``
  files inside ``STATIC_DIR``. By default WeasyPrint follows ``file://``,
  ``http(s)://`` and ``ftp://`` URLs found anywhere in the HTML or CSS (images,
  stylesheets, ``@import``, fonts, SVG ``<image>``/``<use>``, ``<object>``,
  ``<link rel=attachment>`` / ``<a rel=attachment>``, which it embeds in the PDF):
  local-file disclosure and SSRF. ``SafeFetcher`` refuses all of those by raising
  before anything is opened; WeasyPrint then leaves the resource out and logs an
  error on the ``weasyprint`` logger (that message does include the URL; our own
  refusal log line names only the scheme). ``base_url`` is always ``None`` and
  ``<base href>`` cannot help: a relative URL stays relative and is refused.
  Consequences for templates: reference assets with absolute ``app-static:`` URLs
  (relative references inside an ``app-static`` SVG or CSS are refused), and use
  system fonts by ``font-family`` (``@font-face { src: local(...) }`` resolves to a
  ``file://`` URL and is refused; the fonts Pango finds itself are unaffected).

Timeout (choice and why): rendering runs **in this process, on a separate daemon
thread**; the caller waits at most ``timeout`` seconds and then raises
``RenderError``. WeasyPrint is synchronous and a Python thread cannot be killed, so a
render that times out keeps running in the background until it finishes on its own
(its result is dropped). To bound the damage, once ``MAX_ABANDONED`` timed-out
renders are still running, ``render`` refuses new work at once with ``RenderError``
until they end. A subprocess per render ("spawn"/"forkserver") could be killed, but
would pay WeasyPrint's ~1 s import each time (or need a pool of warm workers), which
breaks the "within 1.5x of plain WeasyPrint" target; the thread costs ~0.1 ms. Our
inputs are our own templates with escaped values and no network access, so a
runaway render is unlikely; the timeout is a guard, not a sandbox. Each render
builds its own WeasyPrint objects (fetcher, colour profile, font configuration), so
renders from several request threads (``serve`` runs threaded workers) do not share
state; a check of 12 PDF/A-3a renders on 4 threads at once gave 12 PDFs the size of
one rendered alone and no errors (2026-12-06): a check, not a load test.
"""
from __future__ import annotations

import functools
import io
import logging
import os
import re
import stat
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from plugin.errors import PluginError

if TYPE_CHECKING:  # pragma: no cover - for type checkers only; never imported at run time
    from weasyprint.urls import URLFetcher

    SafeFetcher: type[URLFetcher]  # built on first access, see __getattr__

__all__ = ["STATIC_DIR", "STATIC_SCHEME", "VARIANTS", "MAX_ABANDONED", "RenderError", "last_page_fill",
           "FetchRefused", "SafeFetcher", "read_static", "stylesheet", "render"]

log = logging.getLogger(__name__)

STATIC_DIR: Path = Path(__file__).resolve().parent / "static"
STATIC_SCHEME = "app-static:"
VARIANTS = ("pdf/a-3a", "pdf/ua-1")
"""``pdf/a-3a``: archival (PDF/A-3, output intent, XMP) and tagged; the default.
``pdf/ua-1``: tagged, PDF/UA-1 metadata, the accessible alternative."""

MAX_ABANDONED = 2
"""How many timed-out renders may still be running before ``render`` refuses work."""

MAX_STATIC_BYTES = 20 * 1024 * 1024
"""Largest static file served (a guard; our assets are kilobytes)."""

STATIC_TYPES = {
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
}
"""The only file types served; templates (.html, .j2) and anything else are refused."""

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9.+-]*):")


class RenderError(PluginError):
    """The PDF could not be made: WeasyPrint failed, or the render timed out."""


class FetchRefused(ValueError):
    """SafeFetcher will not serve this URL. The message names the scheme, never the URL."""


def _scheme_of(url: str) -> str:
    if url.startswith("//"):
        return "(network-path)"
    match = _SCHEME.match(url)
    return match[1].lower() if match else "(relative)"


def _refuse(url: str, why: str) -> FetchRefused:
    scheme = _scheme_of(url)
    log.debug("document fetch refused: scheme %s (%s)", scheme, why)
    return FetchRefused(f"fetch refused: scheme {scheme} ({why})")


def read_static(url: str) -> tuple[bytes, str]:
    """Body and media type of an ``app-static:<relative path>`` URL, or ``FetchRefused``.

    The path (percent-decoded; a ``#fragment`` or ``?query`` is dropped) must be a
    plain relative path of named segments (no ``..``, ``.``, empty segments, leading
    ``/``, backslashes or NUL), must resolve, symlinks followed, to a regular file
    inside ``STATIC_DIR``, and must have one of the ``STATIC_TYPES`` extensions.
    Nothing outside ``STATIC_DIR`` is opened. Needs no WeasyPrint.
    """
    if not url.startswith(STATIC_SCHEME):
        raise _refuse(url, "not app-static")
    raw = url[len(STATIC_SCHEME):]
    raw = raw.split("#", 1)[0].split("?", 1)[0]
    try:
        relative = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse(url, "path is not UTF-8") from None
    segments = relative.split("/")
    if (not relative or "\x00" in relative or "\\" in relative or relative.startswith("/")
            or any(s in ("", ".", "..") for s in segments)):
        raise _refuse(url, "not a plain relative path")
    media_type = STATIC_TYPES.get(Path(segments[-1]).suffix.lower())
    if media_type is None:
        raise _refuse(url, "file type not served")
    root = STATIC_DIR.resolve()
    try:
        target = root.joinpath(*segments).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        raise _refuse(url, "no such file") from None
    if not target.is_relative_to(root):
        raise _refuse(url, "outside the static folder")
    try:  # O_NONBLOCK: a FIFO planted in the folder cannot hang the render
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        raise _refuse(url, "unreadable") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _refuse(url, "not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            body = handle.read(MAX_STATIC_BYTES + 1)
    except OSError:
        raise _refuse(url, "unreadable") from None
    finally:
        os.close(fd)
    if len(body) > MAX_STATIC_BYTES:
        raise _refuse(url, "file too large")
    return body, media_type


@functools.cache
def _safe_fetcher_class() -> type[URLFetcher]:
    """Build SafeFetcher on first use, so that importing this module skips WeasyPrint."""
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class SafeFetcher(URLFetcher):
        """A WeasyPrint URL fetcher that serves ``data:`` and ``app-static:`` URLs only.

        Everything else (``http:``, ``https:``, ``file:``, ``ftp:``, ``//host``,
        relative URLs, ``javascript:``, ...) raises ``FetchRefused`` before anything is
        read or any connection made; the refusal is logged at DEBUG with the scheme
        only. WeasyPrint routes every fetch, HTTP redirects included, through
        ``fetch``; the base class is also limited to ``data`` as a second fence.
        """

        def __init__(self, **kwargs: Any) -> None:
            kwargs["allowed_protocols"] = ("data",)
            kwargs["allow_redirects"] = False
            super().__init__(**kwargs)

        def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
            if not isinstance(url, str):
                raise _refuse("", "not a string")
            if url[:5].lower() == "data:":
                return super().fetch(url, headers)
            if url.startswith(STATIC_SCHEME):
                body, media_type = read_static(url)
                return URLFetcherResponse(url, body, {"Content-Type": media_type})
            raise _refuse(url, "scheme not allowed")

    SafeFetcher.__module__ = __name__
    SafeFetcher.__qualname__ = "SafeFetcher"
    return SafeFetcher


def __getattr__(name: str) -> Any:
    """``pdf.SafeFetcher`` (and ``from ... import SafeFetcher``) imports WeasyPrint then."""
    if name == "SafeFetcher":
        return _safe_fetcher_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def stylesheet(name: str) -> Any:
    """A stylesheet of ``STATIC_DIR`` (``"base.css"``), parsed by WeasyPrint once per
    process and shared by every render (it is only read). Parsing our two summary
    sheets took ~9 ms of every render when the template linked them. Read through
    ``read_static`` and fetching through ``SafeFetcher`` like any asset; a name that
    is not a served ``.css`` file is ``FetchRefused``."""
    import weasyprint

    body, media_type = read_static(STATIC_SCHEME + name)
    if media_type != "text/css":
        raise _refuse(STATIC_SCHEME + name, "not a stylesheet")
    return weasyprint.CSS(string=body.decode("utf-8"), base_url=None,
                          url_fetcher=_safe_fetcher_class()())


_abandoned = 0
_abandoned_lock = threading.Lock()

_SRGB_KEY = "archival-srgb"


@functools.cache
def _srgb_bytes() -> bytes:
    from importlib.resources import files

    return (files("weasyprint.pdf") / "sRGB2014.icc").read_bytes()


def _srgb_profile() -> Any:
    """The PDF/A output intent, sRGB, as WeasyPrint itself would make it.

    WeasyPrint 70's PDF/A variants open its sRGB2014.icc and never close the file, a
    ``ResourceWarning`` that ``filterwarnings = error`` turns into a test failure for
    every PDF/A render. Handing it the same profile (read and closed here) under our
    own key, with ``output_intent`` naming that key, skips that code path; the output
    intent and the default ICC colour space are the same. A fresh object per render:
    WeasyPrint writes the profile's PDF reference into it.
    """
    from weasyprint.css import ColorProfile

    return ColorProfile(io.BytesIO(_srgb_bytes()), "sRGB2014.icc", "relative-colorimetric",
                        (["r"], ["g"], ["b"]))


#: Box types that put ink on a page: lines of text and images.
_INKED = ("LineBox", "InlineReplacedBox", "BlockReplacedBox")


def last_page_fill(rendered: Any) -> float:
    """How far down its page area the last page's text and images reach (0 to 1), from
    WeasyPrint's laid-out boxes (no second render, no rasterising): a near-empty last
    page (a lone line or two) is a small number. 1.0 for a one-page document."""
    if len(rendered.pages) < 2:
        return 1.0
    page = rendered.pages[-1]._page_box
    top, height = page.content_box_y(), page.height
    bottoms = [box.position_y + box.margin_height()
               for root in page.children if type(root).__name__ != "MarginBox"
               for box in root.descendants() if type(box).__name__ in _INKED]
    return max(0.0, (max(bottoms, default=top) - top) / height) if height else 1.0


def render(html: str, *, variant: str | None = "pdf/a-3a", title: str | None = None,
           timeout: float = 30.0, stylesheets: tuple[str, ...] = (),
           refits: tuple[str, ...] = (), min_last_page: float = 0.0) -> bytes:
    """PDF bytes for ``html`` (already escaped: from an autoescaping Jinja2 template).

    ``variant`` is one of ``VARIANTS`` (default ``"pdf/a-3a"``: PDF/A-3a, tagged) or
    ``None`` for a plain PDF (the benchmark baseline). An unknown variant, or a
    ``timeout`` that is not positive, is a programming error: ``ValueError`` at once,
    before any work. ``title`` overrides the document title (else the HTML
    ``<title>``); PDF/UA wants one, and ``<html lang>``. ``stylesheets`` names static
    stylesheets applied after the document's own, in order, parsed once (``stylesheet``).
    ``refits``: when the last page is filled less than ``min_last_page`` (a near-empty
    page: ``last_page_fill``), the document is laid out again with each of these
    stylesheets added in turn (tighter or looser spacing), and the first layout whose
    last page is filled enough is kept (else the best one); a document that fits needs
    no second layout.

    Assets are fetched only through ``SafeFetcher`` (``base_url=None``,
    ``presentational_hints=False``). Raises ``RenderError`` when WeasyPrint fails,
    when the render takes longer than ``timeout`` seconds (the render thread is then
    abandoned, see the module docstring), or when too many abandoned renders are
    still running. The first call also imports WeasyPrint (~1 s), outside the timeout.
    """
    global _abandoned
    if variant is not None and variant not in VARIANTS:
        raise ValueError(f"unknown PDF variant {variant!r}; expected one of {VARIANTS} or None")
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, got {timeout!r}")
    with _abandoned_lock:
        if _abandoned >= MAX_ABANDONED:
            raise RenderError(f"PDF renderer busy: {_abandoned} timed-out renders still running")
    try:
        import weasyprint  # lazy: ~1 s, paid by the first render only
    except Exception as exc:  # pragma: no cover - missing Pango or the like
        raise RenderError("PDF renderer unavailable", original_error=exc) from exc
    fetcher = _safe_fetcher_class()()

    outcome: dict[str, Any] = {}
    done = threading.Event()
    abandoned = threading.Event()

    def work() -> None:
        global _abandoned
        try:
            document = weasyprint.HTML(string=html, base_url=None, url_fetcher=fetcher)
            options: dict[str, Any] = {"pdf_variant": variant, "presentational_hints": False}
            profiles = None
            if variant == "pdf/a-3a":
                options["output_intent"], profiles = _SRGB_KEY, {_SRGB_KEY: _srgb_profile()}
            sheets = [stylesheet(name) for name in stylesheets]
            rendered = document.render(color_profiles=profiles, stylesheets=sheets, **options)
            fill = last_page_fill(rendered)
            for refit in refits if fill < min_last_page else ():
                if variant == "pdf/a-3a":  # a fresh profile: the render writes into it
                    profiles = {_SRGB_KEY: _srgb_profile()}
                again = document.render(color_profiles=profiles,
                                        stylesheets=[*sheets, stylesheet(refit)], **options)
                better = last_page_fill(again)
                if better > fill or len(again.pages) < len(rendered.pages):
                    rendered, fill = again, better
                if fill >= min_last_page:
                    break
            if title is not None:
                rendered.metadata.title = title
            outcome["pdf"] = rendered.write_pdf(**options)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            outcome["error"] = exc
        finally:
            with _abandoned_lock:
                done.set()
                if abandoned.is_set():
                    _abandoned -= 1

    thread = threading.Thread(target=work, name="pdf-render", daemon=True)
    thread.start()
    if not done.wait(timeout):
        with _abandoned_lock:
            if not done.is_set():  # it may have finished while we took the lock
                abandoned.set()
                _abandoned += 1
        if abandoned.is_set():
            log.warning("PDF render exceeded %.1f s; abandoned (still running)", timeout)
            raise RenderError(f"PDF rendering took longer than {timeout:g} s")
    error = outcome.get("error")
    if error is not None:
        raise RenderError(f"PDF rendering failed: {type(error).__name__}",
                          original_error=error) from error
    return outcome["pdf"]
