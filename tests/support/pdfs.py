"""Looking inside PDFs in tests: text, page images, tags, PDF/A claims, attachments.

Every PDF test uses these, so each check means the same everywhere. pypdf reads the
structure; ``pdftoppm`` (poppler-utils) draws the pages.
"""
from __future__ import annotations

import io
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from pypdf import PdfReader
from pypdf.generic import StreamObject

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "pdf"
"""Default folder for page images (git-ignored with the rest of tests/artifacts)."""

PDFTOPPM = "/usr/bin/pdftoppm"

_NS = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "pdfaid": "http://www.aiim.org/pdfa/ns/id/",
    "pdfuaid": "http://www.aiim.org/pdfua/ns/id/",
}


def _reader(pdf_bytes: bytes) -> PdfReader:
    return PdfReader(io.BytesIO(pdf_bytes))


def title_of(pdf_bytes: bytes) -> str | None:
    """The document title in the PDF's metadata (what a viewer's title bar shows)."""
    return _reader(pdf_bytes).metadata.title


def text_of(pdf_bytes: bytes) -> str:
    """The extracted text of all pages, joined by newlines."""
    return "\n".join(page.extract_text() or "" for page in _reader(pdf_bytes).pages)


def page_texts(pdf_bytes: bytes) -> list[str]:
    """The extracted text of each page, whitespace collapsed (a line break and a
    space read alike): for "this text lies on one page" checks."""
    return [" ".join((page.extract_text() or "").split()) for page in _reader(pdf_bytes).pages]


def ink_depth(png: Path, *, footer_mm: float = 22.0, page_mm: float = 297.0) -> float:
    """How far down a rendered page its ink reaches, as a fraction of the page's height,
    the running footer's band (the bottom ``footer_mm``) left out: a page holding one
    line under a 16 mm margin is about 0.08, a full page about 0.9. Ink is any pixel
    darker than light grey (the hairlines of a table count; white space does not)."""
    from PIL import Image  # only the layout tests need it

    with Image.open(png) as image:
        grey = image.convert("L")
        width, height = grey.size
        band = int(height * (1 - footer_mm / page_mm))
        pixels = grey.load()
        lowest = 0
        for y in range(band):
            if any(pixels[x, y] < 160 for x in range(width)):
                lowest = y
    return lowest / height


def page_count(pdf_bytes: bytes) -> int:
    return len(_reader(pdf_bytes).pages)


def pages_as_png(pdf_bytes: bytes, out_dir: Path | str | None = None, prefix: str = "page",
                 dpi: int = 60) -> list[Path]:
    """Draw every page with ``pdftoppm -png -r DPI``; the PNG paths, in page order.

    Files are ``out_dir/prefix-<n>.png`` (pdftoppm zero-pads ``n`` for longer
    documents); older files with the same prefix are removed first so that a shorter
    document does not inherit stale pages. ``out_dir`` defaults to tests/artifacts/pdf/.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", prefix):
        raise ValueError(f"prefix must be a plain file-name stem, got {prefix!r}")
    folder = Path(out_dir) if out_dir is not None else ARTIFACTS
    folder.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(rf"{re.escape(prefix)}-(\d+)\.png")
    for old in folder.glob(f"{prefix}-*.png"):
        if pattern.fullmatch(old.name):
            old.unlink()
    subprocess.run([PDFTOPPM, "-png", "-r", str(dpi), "-", str(folder / prefix)],
                   input=pdf_bytes, check=True, capture_output=True, timeout=120)
    pages = [(int(m[1]), p) for p in folder.glob(f"{prefix}-*.png")
             if (m := pattern.fullmatch(p.name))]
    return [p for _, p in sorted(pages)]


def is_tagged(pdf_bytes: bytes) -> bool:
    """The catalog has a structure tree and ``/MarkInfo << /Marked true >>``."""
    catalog = _reader(pdf_bytes).trailer["/Root"]
    mark_info = catalog.get("/MarkInfo")
    mark_info = mark_info.get_object() if mark_info is not None else {}
    return "/StructTreeRoot" in catalog and bool(mark_info.get("/Marked", False))


def _xmp_values(pdf_bytes: bytes, prefix: str, names: tuple[str, ...]) -> list[str | None]:
    """Values of ``prefix:name`` in the XMP packet, as attributes or as elements."""
    metadata = _reader(pdf_bytes).trailer["/Root"].get("/Metadata")
    if metadata is None:
        return [None] * len(names)
    root = ET.fromstring(metadata.get_object().get_data())
    values: list[str | None] = []
    for name in names:
        tag = f"{{{_NS[prefix]}}}{name}"
        found = None
        for description in root.iter(f"{{{_NS['rdf']}}}Description"):
            if tag in description.attrib:
                found = description.attrib[tag]
                break
            element = description.find(tag)
            if element is not None and element.text:
                found = element.text
                break
        values.append(found.strip() if found else None)
    return values


def pdfa_part(pdf_bytes: bytes) -> str | None:
    """The PDF/A claim in the XMP metadata, part + conformance (``"3A"``), or None."""
    part, conformance = _xmp_values(pdf_bytes, "pdfaid", ("part", "conformance"))
    return f"{part}{conformance or ''}" if part else None


def pdfua_part(pdf_bytes: bytes) -> str | None:
    """The PDF/UA claim (``pdfuaid:part``, e.g. ``"1"``) in the XMP metadata, or None."""
    (part,) = _xmp_values(pdf_bytes, "pdfuaid", ("part",))
    return part


def embedded_files(pdf_bytes: bytes) -> list[str]:
    """Names of every attached file: the EmbeddedFiles name tree (``<link rel=attachment>``)
    and file-attachment annotations on pages (``<a rel=attachment>``)."""
    reader = _reader(pdf_bytes)
    names = list(reader.attachments)
    for page in reader.pages:
        for annotation in page.get("/Annots") or []:
            annotation = annotation.get_object()
            if annotation.get("/Subtype") == "/FileAttachment":
                spec = annotation.get("/FS")
                spec = spec.get_object() if spec is not None else {}
                names.append(str(spec.get("/UF") or spec.get("/F") or "(unnamed)"))
    return names


def decoded_bytes(pdf_bytes: bytes) -> bytes:
    """The raw file followed by every stream decompressed: search this for leaked
    content, since a compressed stream hides it from a plain ``in pdf_bytes``."""
    reader = _reader(pdf_bytes)
    chunks = [pdf_bytes]
    for number in range(1, int(reader.trailer.get("/Size", 0))):
        try:
            obj = reader.get_object(number)
        except Exception:  # noqa: BLE001 - free or broken entries: nothing to search
            continue
        if isinstance(obj, StreamObject):
            try:
                chunks.append(obj.get_data())
            except Exception:  # noqa: BLE001 - an undecodable filter (images): keep raw
                chunks.append(obj._data)
    return b"\n".join(chunks)
