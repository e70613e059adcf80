"""PDF rendering: variants, the fetcher that fetches nothing, lazy import, timeout.

The fetcher proof (the issue: "a test proves that http://127.0.0.1:..., other hosts and
file:// paths in any template input fetch nothing"): a real HTTP server on 127.0.0.1
counts every connection while we render HTML that names it in every place WeasyPrint
fetches from; it must see none, and a local file's marker must not reach the PDF. The
same HTML rendered with WeasyPrint's default fetcher does hit the server and embed the
file, which shows the test would notice a leak.
"""
from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from plugin.adapters.documents import pdf
from plugin.errors import PluginError
from tests.support.pdfs import (decoded_bytes, embedded_files, is_tagged, page_count,
                                pages_as_png, pdfa_part, pdfua_part, text_of)

ROOT = Path(__file__).resolve().parents[2]

SIMPLE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Posterior thigh exam</title>
<link rel="stylesheet" href="app-static:base.css"></head>
<body><h1>Hamstring assessment</h1>
<table><thead><tr><th>Test</th><th>Result</th></tr></thead>
<tbody><tr><td>Active knee extension</td><td>Positive, left</td></tr></tbody></table>
</body></html>"""


# --- rendering --------------------------------------------------------------------

def test_a_small_document_renders_with_the_shared_stylesheet() -> None:
    out = pdf.render(SIMPLE, variant=None)
    assert out.startswith(b"%PDF-")
    text = text_of(out)
    assert "Hamstring assessment" in text and "Active knee extension" in text
    assert page_count(out) == 1
    # base.css was served and applied: its font, not WeasyPrint's default serif
    assert b"+DejaVu-Sans" in decoded_bytes(out)
    bare = pdf.render(SIMPLE.replace('href="app-static:base.css"', 'href="app-static:no.css"'),
                      variant=None)
    assert b"+DejaVu-Sans" not in decoded_bytes(bare)


def test_pdf_a_3a_is_tagged_and_claims_part_3_level_a() -> None:
    out = pdf.render(SIMPLE)  # the default variant
    assert out.startswith(b"%PDF-1.7")
    assert is_tagged(out)
    assert pdfa_part(out) == "3A"
    assert "Hamstring assessment" in text_of(out)


def test_pdf_ua_1_is_tagged_and_claims_ua_1() -> None:
    out = pdf.render(SIMPLE, variant="pdf/ua-1")
    assert is_tagged(out)
    assert pdfua_part(out) == "1"
    assert pdfa_part(out) is None


def test_plain_pdf_makes_no_claims() -> None:
    out = pdf.render(SIMPLE, variant=None)
    assert not is_tagged(out)
    assert pdfa_part(out) is None and pdfua_part(out) is None


def test_title_overrides_the_html_title() -> None:
    from pypdf import PdfReader
    import io

    out = pdf.render(SIMPLE, title="Exam of 21 Nov 2026")
    assert PdfReader(io.BytesIO(out)).metadata.title == "Exam of 21 Nov 2026"
    assert b"Exam of 21 Nov 2026" in decoded_bytes(out)  # XMP dc:title too


def test_variants_are_exactly_the_two_we_support() -> None:
    assert pdf.VARIANTS == ("pdf/a-3a", "pdf/ua-1")
    for variant in ("pdf/a-3b", "pdf/x-4", "PDF/A-3A", "", "debug"):
        with pytest.raises(ValueError, match="unknown PDF variant"):
            pdf.render(SIMPLE, variant=variant)
    with pytest.raises(ValueError, match="timeout"):
        pdf.render(SIMPLE, timeout=0)


def test_a_weasyprint_failure_is_a_render_error() -> None:
    with pytest.raises(pdf.RenderError) as caught:
        pdf.render(None)  # type: ignore[arg-type]  # WeasyPrint: "Expected exactly one source"
    assert isinstance(caught.value, PluginError)
    assert isinstance(caught.value.original_error, TypeError)


def test_data_urls_are_served() -> None:
    html = ('<link rel="stylesheet" href="data:text/css,p::after%7Bcontent:%22-served%22%7D">'
            "<p>data</p>")
    assert "data-served" in text_of(pdf.render(html, variant=None))


# --- pages_as_png / page_count --------------------------------------------------------

def test_pages_as_png_draws_one_png_per_page(tmp_path: Path) -> None:
    html = SIMPLE.replace("</body>", '<h2 style="break-before: page">Second</h2>'
                                     '<h2 style="break-before: page">Third</h2></body>')
    out = pdf.render(html)
    assert page_count(out) == 3
    (tmp_path / "exam-9.png").write_bytes(b"stale")  # an older, longer run
    pngs = pages_as_png(out, tmp_path, "exam", dpi=30)
    assert [p.name for p in pngs] == ["exam-1.png", "exam-2.png", "exam-3.png"]
    assert sorted(tmp_path.iterdir()) == sorted(pngs)
    for png in pngs:
        assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


# --- lazy import ---------------------------------------------------------------------

def test_importing_the_module_does_not_import_weasyprint() -> None:
    code = ("import sys, plugin.adapters.documents.pdf as pdf; "
            "assert 'weasyprint' not in sys.modules, 'imported at module import'; "
            "pdf.read_static('app-static:base.css'); "
            "assert 'weasyprint' not in sys.modules, 'imported by read_static'; "
            "pdf.SafeFetcher; assert 'weasyprint' in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# --- the fetcher proof ---------------------------------------------------------------

class _CountingServer(http.server.ThreadingHTTPServer):
    """Counts every connection accepted, whether or not a request follows."""
    daemon_threads = True
    connections = 0

    def verify_request(self, request, client_address) -> bool:
        type(self).connections += 1
        return True


class _Handler(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        type(self).requests.append(self.path)
        body, ctype = (b"body::after { content: 'FETCHED-OVER-HTTP' }", "text/css")
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_HEAD = do_GET

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def spy_server() -> Iterator[tuple[str, type[_CountingServer], type[_Handler]]]:
    server_cls = type("Server", (_CountingServer,), {"connections": 0})
    handler_cls = type("Handler", (_Handler,), {"requests": []})
    server = server_cls(("127.0.0.1", 0), handler_cls)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server_cls, handler_cls
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def hostile(at: Callable[[str], str], base: str) -> str:
    """HTML that names ``at(name)`` everywhere WeasyPrint might fetch from, under a
    ``<base href=base>`` (relative references too)."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hostile</title>
<base href="{base}">
<link rel="stylesheet" href="{at('link.css')}">
<link rel="stylesheet" href="relative-after-base.css">
<link rel="attachment" href="{at('attachment.txt')}" title="att">
<link rel="icon" href="{at('favicon.png')}">
<style>
@import url("{at('import.css')}");
@import "{at('import2.css')}";
@font-face {{ font-family: Spy; src: url("{at('font.woff2')}") format("woff2"),
                                      url("{at('font.ttf')}"); }}
body {{ background: url("{at('bg.png')}"); font-family: Spy, sans-serif; }}
ul {{ list-style-image: url("{at('bullet.png')}"); }}
h1::before {{ content: url("{at('before.png')}"); }}
div.b {{ border: 10px solid; border-image-source: url("{at('border.png')}"); }}
</style></head>
<body>
<h1>Hostile</h1>
<img src="{at('img.png')}" alt="i">
<img src="relative.png" alt="r">
<p style="background-image: url('{at('inline.png')}')">inline style</p>
<ul><li>item</li></ul>
<div class="b">border</div>
<object data="{at('object.svg')}" type="image/svg+xml">object</object>
<object data="{at('object.png')}" type="image/png"></object>
<embed src="{at('embed.svg')}" type="image/svg+xml">
<iframe src="{at('frame.html')}"></iframe>
<video poster="{at('poster.png')}"></video>
<input type="image" src="{at('input.png')}" alt="x">
<a href="{at('link')}">a plain link</a>
<a rel="attachment" href="{at('anchor-attachment.txt')}">attached link</a>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
     width="60" height="60">
  <style>@import url("{at('svg-import.css')}");</style>
  <image href="{at('svg-image.png')}" width="10" height="10"/>
  <image xlink:href="{at('svg-xlink-image.png')}" width="10" height="10"/>
  <use href="{at('sprite.svg')}#a"/>
  <use xlink:href="{at('sprite2.svg')}#b"/>
  <rect width="5" height="5" fill="url({at('pattern.svg')}#p)"/>
  <rect width="5" height="5" filter="url({at('filter.svg')}#f)"/>
</svg>
</body></html>"""


def color_profile(url: str) -> str:
    """WeasyPrint does not catch a failed ``@color-profile`` fetch: the render fails."""
    return (f'<style>@color-profile --spy {{ src: url("{url}"); }} '
            "p { color: color(--spy 0 0 0 1) }</style><p>profile</p>")


def render_or_fail(html: str, **kwargs) -> bytes | None:
    try:
        return pdf.render(html, **kwargs)
    except pdf.RenderError:
        return None


def test_no_request_reaches_a_local_http_server(spy_server) -> None:
    url, server, handler = spy_server
    for variant in (*pdf.VARIANTS, None):
        out = pdf.render(hostile(lambda name: f"{url}/{name}", base=url + "/"), variant=variant)
        assert "Hostile" in text_of(out)
        assert "FETCHED-OVER-HTTP" not in text_of(out)
        assert embedded_files(out) == []
    # the same host without a scheme, and a <base> whose relative URLs all point at it
    host = url.removeprefix("http:")
    pdf.render(hostile(lambda name: f"{host}/{name}", base=host + "/"))
    pdf.render(f'<base href="{url}/"><img src="x.png"><link rel=stylesheet href="s.css">'
               '<link rel=attachment href="a.txt"><a rel=attachment href="b.txt">b</a><p>base</p>')
    render_or_fail(color_profile(url + "/profile.icc"))
    assert handler.requests == [] and server.connections == 0
    # the server does work: a direct request is seen
    with urllib.request.urlopen(url + "/probe", timeout=5) as response:
        response.read()
    assert handler.requests == ["/probe"] and server.connections == 1


def test_the_server_proof_would_catch_a_leak(spy_server) -> None:
    """Control: WeasyPrint's own fetcher, on the same HTML, does hit the server."""
    import weasyprint

    url, server, handler = spy_server
    html = hostile(lambda name: f"{url}/{name}", base=url + "/")
    out = weasyprint.HTML(string=html).write_pdf()
    assert server.connections > 5
    assert {"/link.css", "/img.png", "/attachment.txt", "/relative.png"} <= set(handler.requests)
    assert "FETCHED-OVER-HTTP" in text_of(out)
    assert embedded_files(out)


@pytest.fixture()
def secret_file(tmp_path: Path) -> tuple[Path, str]:
    marker = "LEAK" + uuid.uuid4().hex[:12]  # short: one word, no line break in the text
    path = tmp_path / "secret.css"
    path.write_text(f"/* {marker} */ body::after {{ content: '{marker}' }}\n")
    return path, marker


def test_local_files_are_not_read(secret_file) -> None:
    path, marker = secret_file
    folder = path.parent.as_uri() + "/"
    for url in (path.as_uri(), "file://" + str(path), "file:" + str(path),
                "file://localhost" + str(path)):
        for variant in (*pdf.VARIANTS, None):
            out = pdf.render(hostile(lambda name: url, base=folder), variant=variant)
            assert marker.encode() not in decoded_bytes(out)
            assert marker not in text_of(out)
            assert embedded_files(out) == []
        profiled = render_or_fail(color_profile(url))
        assert profiled is None or marker.encode() not in decoded_bytes(profiled)
    # relative to a <base> in the file's folder
    out = pdf.render(f'<base href="{folder}"><link rel=stylesheet href="secret.css">'
                     '<link rel=attachment href="secret.css"><a rel=attachment '
                     'href="secret.css">a</a><img src="secret.css"><p>x</p>')
    assert marker.encode() not in decoded_bytes(out) and embedded_files(out) == []
    # a system file
    hostname = Path("/etc/hostname")
    out = pdf.render(hostile(lambda name: "file:///etc/hostname", base="file:///etc/"))
    assert embedded_files(out) == []
    if hostname.is_file() and len(name := hostname.read_text().strip()) >= 8:
        assert name.encode() not in decoded_bytes(out)


def test_the_file_proof_would_catch_a_leak(secret_file) -> None:
    """Control: WeasyPrint's own fetcher reads the file, styles with it and embeds it."""
    import weasyprint

    path, marker = secret_file
    html = hostile(lambda name: path.as_uri(), base=path.parent.as_uri() + "/")
    out = weasyprint.HTML(string=html).write_pdf()
    assert marker in text_of(out)
    assert embedded_files(out) and marker.encode() in decoded_bytes(out)


REFUSED = [
    "http://127.0.0.1:9/x.css",
    "https://127.0.0.1:9/x.css",
    "http://example.invalid/x",
    "HTTP://EXAMPLE.INVALID/X",
    "ftp://example.invalid/x",
    "file:///etc/hostname",
    "file:/etc/hostname",
    "FILE:///etc/hostname",
    "//evil/x",
    "//127.0.0.1:9/x.css",
    "base.css",
    "./base.css",
    "/etc/hostname",
    "javascript:alert(1)",
    "mailto:x@example.invalid",
    "about:blank",
    "jar:file:///x!/y",
    "APP-STATIC:base.css",
    "app-static:../../../etc/hostname",
    "app-static:../documents/static/base.css",
    "app-static:%2e%2e/%2e%2e/%2e%2e/etc/hostname",
    "app-static:..%2f..%2fpdf.py",
    "app-static:/etc/hostname",
    "app-static:%2fetc%2fhostname",
    "app-static://etc/hostname",
    "app-static:./base.css",
    "app-static:sub/../base.css",
    "app-static:base.css/",
    "app-static:",
    "app-static:base.css\x00.png",
    "app-static:base%00.css",
    "app-static:..\\..\\etc\\hostname",
    "app-static:%ff.css",
    "app-static:missing.css",
    "app-static:../pdf.py",
    "app-static:__init__.py",
]


def _fetcher():
    return pdf.SafeFetcher()


@pytest.mark.parametrize("url", REFUSED)
def test_safe_fetcher_refuses(url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger=pdf.__name__)
    with pytest.raises(pdf.FetchRefused) as caught:
        _fetcher().fetch(url)
    assert isinstance(caught.value, ValueError)
    # neither the log line nor the message repeats the URL (it could carry PHI)
    path_part = url.split(":", 1)[-1].strip("/")
    records = [r for r in caplog.records if r.name == pdf.__name__]
    assert records and all(r.levelname == "DEBUG" for r in records)
    if len(path_part) > 4:
        assert path_part not in caplog.text and path_part not in str(caught.value)


def test_refusal_logs_the_scheme_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger=pdf.__name__)
    with pytest.raises(pdf.FetchRefused):
        _fetcher().fetch("https://ehr.example.invalid/Patient/MRN-0042?name=Silva")
    assert "scheme https" in caplog.text
    assert "MRN-0042" not in caplog.text and "Silva" not in caplog.text
    assert "ehr.example" not in caplog.text


def test_safe_fetcher_serves_our_static_files_and_data_urls() -> None:
    fetcher = _fetcher()
    response = fetcher.fetch("app-static:base.css")
    assert response.content_type == "text/css"
    assert response.read() == (pdf.STATIC_DIR / "base.css").read_bytes()
    for url in ("app-static:base.css?v=1", "app-static:base.css#x", "app-static:base%2Ecss"):
        assert fetcher.fetch(url).read() == (pdf.STATIC_DIR / "base.css").read_bytes()
    data = fetcher.fetch("data:text/css;base64,cCB7fQ==")
    assert data.read() == b"p {}"


def test_the_fetcher_never_opens_a_connection(monkeypatch) -> None:
    """Even the base class's opener is unreachable: no socket is created while
    refusing every network URL."""
    import socket

    def no_socket(*args, **kwargs):
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket, "socket", no_socket)
    monkeypatch.setattr(socket, "create_connection", no_socket)
    monkeypatch.setattr(socket, "getaddrinfo", no_socket)
    fetcher = _fetcher()
    for url in ("http://example.invalid/x", "https://127.0.0.1/x", "ftp://h/x", "//evil/x"):
        with pytest.raises(pdf.FetchRefused):
            fetcher.fetch(url)
        with pytest.raises(pdf.FetchRefused):
            fetcher.open(url)  # the OpenerDirector entry point WeasyPrint's redirects use


@pytest.fixture()
def static_dir(tmp_path: Path, monkeypatch) -> Path:
    """A stand-in STATIC_DIR with the awkward cases in it."""
    static = tmp_path / "static"
    (static / "exercises").mkdir(parents=True)
    (static / "ok.css").write_text("p { color: red }")
    (static / "exercises" / "bridge.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (static / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (static / "font.woff2").write_bytes(b"wOF2")
    (static / "font.ttf").write_bytes(b"\x00\x01\x00\x00")
    (static / "font.otf").write_bytes(b"OTTO")
    (static / "report.html").write_text("<p>{{ template }}</p>")
    (static / "notes.txt").write_text("plain")
    (static / "dir.css").mkdir()
    (tmp_path / "outside.css").write_text("OUTSIDE")
    (static / "escape.css").symlink_to(tmp_path / "outside.css")
    (static / "exercises" / "up.svg").symlink_to("../../outside.css")
    (static / "alias.css").symlink_to("ok.css")  # a symlink that stays inside: fine
    (static / "loop.css").symlink_to("loop.css")
    import os
    os.mkfifo(static / "fifo.css")
    monkeypatch.setattr(pdf, "STATIC_DIR", static)
    return static


def test_static_files_resolve_inside_the_folder_only(static_dir: Path) -> None:
    fetcher = _fetcher()
    served = {"ok.css": "text/css", "exercises/bridge.svg": "image/svg+xml",
              "logo.png": "image/png", "font.woff2": "font/woff2", "font.ttf": "font/ttf",
              "font.otf": "font/otf", "alias.css": "text/css"}
    for name, media_type in served.items():
        response = fetcher.fetch("app-static:" + name)
        assert response.content_type == media_type
        assert response.read() == (static_dir / name).read_bytes()
    for name in ("escape.css", "exercises/up.svg", "dir.css", "loop.css", "fifo.css",
                 "report.html", "notes.txt", "exercises", "exercises/../ok.css"):
        with pytest.raises(pdf.FetchRefused):
            fetcher.fetch("app-static:" + name)


def test_exercise_svgs_render_from_static(static_dir: Path) -> None:
    (static_dir / "exercises" / "bridge.svg").write_text(
        "<svg xmlns='http://www.w3.org/2000/svg' width='40' height='40'>"
        "<text x='2' y='20'>bridge-figure</text></svg>")
    out = pdf.render('<img src="app-static:exercises/bridge.svg" alt="Bridge"><p>x</p>',
                     variant=None)
    assert "bridge-figure" in text_of(out)


# --- timeout ---------------------------------------------------------------------------

def test_a_render_that_takes_too_long_is_abandoned(monkeypatch) -> None:
    release = threading.Event()
    real = pdf.read_static

    def slow(url: str):
        release.wait(20)
        return real(url)

    monkeypatch.setattr(pdf, "read_static", slow)
    monkeypatch.setattr(pdf, "MAX_ABANDONED", 1)
    pdf.render("<p>warm</p>", variant=None)  # import WeasyPrint outside the clock
    started = time.perf_counter()
    with pytest.raises(pdf.RenderError, match="longer than"):
        pdf.render(SIMPLE, timeout=0.3)
    assert time.perf_counter() - started < 5
    try:
        assert pdf._abandoned == 1
        started = time.perf_counter()
        with pytest.raises(pdf.RenderError, match="busy"):
            pdf.render("<p>next</p>")
        assert time.perf_counter() - started < 0.2
    finally:
        release.set()
    deadline = time.monotonic() + 20
    while pdf._abandoned and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pdf._abandoned == 0
    assert "next" in text_of(pdf.render("<p>next</p>", variant=None))
