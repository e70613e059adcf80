"""A signed record never changes: what the clinician signed is what every later view,
print and delivery shows, byte for byte, whatever the knowledge does later; documents
are made after the signature, outside the request, and a dead renderer's work is
picked up again. On SQLite and on a real PostgreSQL server."""
from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

from plugin.adapters import frozen, outbox, store as store_mod
from plugin.record import freeze
from tests.support import knowledge_copies, pdfs, rendering
from tests.support.cli import run
from tests.support.conformance import assert_conformant
from tests.support.signin import PASSWORD, signed_in
from tests.support import pages

RENAMED = "Disc-related sciatica, renamed by a knowledge update"




def _signed(client) -> str:
    exam_id, version = pages.ready_exam(client)
    signed = client.post(f"/exams/{exam_id}/sign", data={"version": version, "password": PASSWORD})
    assert signed.status_code == 303, signed.get_data(as_text=True)
    return exam_id


def _versions(tmp_path: Path) -> tuple[str, str]:
    """The running knowledge version and the one the updated copy gets."""
    root = knowledge_copies.copy(tmp_path / "current")
    old = json.loads((root / "mappings" / "decision" / "differential.json").read_text())["version"]
    major, minor, _ = old.split(".")
    return old, f"{major}.{int(minor) + 1}.0"


def _updated_knowledge(tmp_path: Path) -> dict[str, str]:
    """A copy of the knowledge, one version on, where the condition the exam suggests
    has another name: settings for an app that loads it."""
    old, new = _versions(tmp_path)
    root = knowledge_copies.copy(tmp_path / "knowledge")
    for path in (root / "mappings" / "decision").glob("*.json"):
        text = path.read_text(encoding="utf-8")
        text = text.replace(f'"version": "{old}"', f'"version": "{new}"', 1)
        text = text.replace('"Lumbar radiculopathy (disc-related sciatica)"', json.dumps(RENAMED))
        path.write_text(text, encoding="utf-8")
    return {"QUESTIONNAIRES_DIR": str(root / "questionnaires"),
            "MAPPINGS_DIR": str(root / "mappings")}


def _documents(client, exam_id: str) -> dict[str, bytes]:
    paths = {"summary": "summary.pdf", "handout": "handout.pdf",
             "handout-large": "handout.pdf?large=1"}
    found = {}
    for kind, path in paths.items():
        for url in (f"/exams/{exam_id}/{path}", f"/exams/{exam_id}/revisions/1/{path}"):
            response = client.get(url)
            assert response.status_code == 200 and response.mimetype == "application/pdf", url
            found.setdefault(kind, response.data)
            assert response.data == found[kind], url  # the revision's own URL: same bytes
    return found


def _signed_support(page: str) -> str:
    """The signed decision support of a record page (before any re-assessment)."""
    return page[page.index('id="assessment-title"'):page.index('id="sources"')]


def test_a_signed_record_stays_byte_identical_after_a_knowledge_update(
        make_app, database_url, tmp_path) -> None:
    before_app = make_app({"WTF_CSRF_ENABLED": False, "DATABASE_URL": database_url})
    before = signed_in(before_app)
    exam_id = _signed(before)
    draft_id, _ = pages.ready_exam(before)
    assert rendering.render_pending(before_app) == 1
    documents = _documents(before, exam_id)
    signed_page = before.get(f"/exams/{exam_id}/record").get_data(as_text=True)
    assert "Lumbar radiculopathy (disc-related sciatica)" in _signed_support(signed_page)
    assert 'id="newer-knowledge"' not in signed_page
    draft_review = before.get(f"/exams/{draft_id}/review").get_data(as_text=True)
    assert "Lumbar radiculopathy (disc-related sciatica)" in draft_review

    after_app = make_app({"WTF_CSRF_ENABLED": False, "DATABASE_URL": database_url,
                          **_updated_knowledge(tmp_path)})
    after = signed_in(after_app)  # the same clinician, another process
    # the same change alters a draft's live assessment ...
    changed_review = after.get(f"/exams/{draft_id}/review").get_data(as_text=True)
    assert RENAMED in changed_review and "(disc-related sciatica)" not in changed_review
    # ... and not the signed record: its documents and its decision support
    assert _documents(after, exam_id) == documents
    assert RENAMED not in pdfs.text_of(documents["summary"])
    page = after.get(f"/exams/{exam_id}/record").get_data(as_text=True)
    assert _signed_support(page) == _signed_support(signed_page)
    notice = re.search(r'id="newer-knowledge">(.*?)</p>', page, re.S).group(1)
    old, new = _versions(tmp_path / "versions")
    assert f"knowledge version {old}" in notice and f"now version {new}" in notice
    assert "does not change" in notice and "Re-assess with current knowledge" in notice
    assert 'id="reassessed"' not in page
    # re-assessed: a new, unsigned suggestion beside the signed one
    page = after.get(f"/exams/{exam_id}/record?reassess=1").get_data(as_text=True)
    assert _signed_support(page) == _signed_support(signed_page)
    reassessed = page[page.index('id="reassessed"'):]
    assert RENAMED in reassessed and "not signed" in reassessed
    assert page.count('id="differential"') == 1  # the second one has its own ids


def test_documents_are_prepared_after_the_signature_then_served_and_delivered_as_stored(
        make_app, database_url, validator) -> None:
    app = make_app({"WTF_CSRF_ENABLED": False, "DATABASE_URL": database_url,
                    "EHR_FHIR_BASE_URL": "https://ehr.example.org/fhir"})
    client = signed_in(app)
    store = store_mod.from_app(app)
    exam_id = _signed(client)

    # pending: the page says so, the PDFs ask to come back, delivery waits
    page = client.get(f"/exams/{exam_id}/record").get_data(as_text=True)
    assert re.search(r'id="documents"[^>]*>Preparing documents', page)
    assert f"/exams/{exam_id}/summary.pdf" not in page
    waiting = client.get(f"/exams/{exam_id}/summary.pdf")
    assert waiting.status_code == 503 and waiting.headers["Retry-After"] == "2"
    assert "Preparing documents" in waiting.get_data(as_text=True)
    assert outbox.claim(store, "worker", 10, 30) == []

    assert rendering.render_pending(app) == 1
    assert rendering.render_pending(app) == 0  # rendered once
    page = client.get(f"/exams/{exam_id}/record").get_data(as_text=True)
    assert "Preparing documents" not in page and f"/exams/{exam_id}/summary.pdf" in page
    served = client.get(f"/exams/{exam_id}/summary.pdf")
    assert served.status_code == 200 and "draft" not in pdfs.text_of(served.data)
    stored = frozen.document(store, exam_id, 1, "summary")
    assert stored.content == served.data
    assert stored.sha256 == hashlib.sha256(served.data).hexdigest()
    assert served.headers["ETag"] == f'"{stored.sha256}"'  # strong
    again = client.get(f"/exams/{exam_id}/summary.pdf",
                       headers={"If-None-Match": served.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    assert client.get(f"/exams/{exam_id}/summary.pdf",
                      headers={"If-None-Match": '"other"'}).status_code == 200

    [job] = outbox.claim(store, "worker", 10, 30)
    [note] = [e["resource"] for e in job.payload["entry"]
              if e["resource"]["resourceType"] == "DocumentReference"]
    attachment = note["content"][0]["attachment"]
    delivered = base64.b64decode(attachment["data"])
    assert delivered == served.data and attachment["size"] == len(served.data)
    assert attachment["hash"] == base64.b64encode(hashlib.sha1(served.data).digest()).decode()
    assert hashlib.sha256(delivered).hexdigest() == stored.sha256
    assert_conformant(validator, note)


def test_a_render_left_by_a_dead_renderer_is_picked_up_again(make_app, database_url) -> None:
    import datetime as dt

    app = make_app({"WTF_CSRF_ENABLED": False, "DATABASE_URL": database_url})
    client = signed_in(app)
    store = store_mod.from_app(app)
    exam_id = _signed(client)
    dead = frozen.claim(store, "dead-renderer", 60)
    assert dead is not None and dead.exam_id == exam_id
    # its lease holds: nobody else takes the render meanwhile
    assert freeze.render_pending(store, worker_id="other", lease_seconds=60) == 0
    # the lease ran out (the claim was taken long ago): another renderer does it
    long_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    with store.engine.begin() as conn:
        conn.execute(frozen.frozen_inputs.update().values(claimed_until=long_ago))
    assert freeze.render_pending(store, worker_id="other", lease_seconds=60) == 1
    assert frozen.rendered(store, exam_id, 1) is True
    # the dead renderer, back late, writes nothing over it
    assert frozen.finish(store, dead, {"summary": ("application/pdf", b"%PDF-late")},
                         lambda payload: payload) is False
    kept = frozen.document(store, exam_id, 1, "summary").content
    assert kept != b"%PDF-late" and "Silva" in pdfs.text_of(kept)


def test_the_documents_command_renders_what_is_pending(make_app, tmp_path) -> None:
    database = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    app = make_app({"WTF_CSRF_ENABLED": False, "DATABASE_URL": database})
    exam_id = _signed(signed_in(app))
    result = run("documents", "--pending", env={"PLUGIN_DATABASE_URL": database,
                                                  "PLUGIN_SECRET_KEY": "test"})
    assert result.returncode == 0, result.stderr
    assert "documents rendered for 1 signed revisions" in result.stderr
    assert frozen.rendered(store_mod.from_app(app), exam_id, 1) is True


def test_serve_alone_renders_a_signed_record_s_documents(make_app, tmp_path) -> None:
    """`scripts/serve` (gunicorn) is all a newcomer starts: its renderer process makes
    the documents of a signature, no other process needed."""
    from tests.support import served

    database = f"sqlite:///{tmp_path / 'exam.sqlite3'}"  # the one `served.serve` uses
    with served.serve(tmp_path):
        app = make_app({"WTF_CSRF_ENABLED": False, "DATABASE_URL": database})
        exam_id = _signed(signed_in(app))
        store = store_mod.from_app(app)
        _wait_rendered(store, exam_id, "the service rendered nothing")
    assert "Silva" in pdfs.text_of(frozen.document(store, exam_id, 1, "summary").content)


def test_a_renderer_that_dies_is_started_again_by_the_service(make_app, tmp_path) -> None:
    """Every child of the gunicorn master killed (the web workers and the renderer):
    the master starts them again, and a signature made after still gets its documents."""
    import os
    import signal
    import subprocess
    import time

    from tests.support import served

    database = f"sqlite:///{tmp_path / 'exam.sqlite3'}"
    with served.serve(tmp_path) as base:
        port = base.rsplit(":", 1)[1]
        deadline = time.monotonic() + 20
        while True:  # the renderer is forked just after the workers: wait for it
            found = subprocess.run(["pgrep", "-f", f"plugin serve --host 127.0.0.1 "
                                    f"--port {port}"], capture_output=True, text=True)
            children = [int(p) for p in found.stdout.split()
                        if int(p) != os.getpid() and _parent(int(p)) not in (os.getpid(), -1)]
            if len(children) == 3 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(children) == 3  # two web workers and the renderer
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        app = make_app({"WTF_CSRF_ENABLED": False, "DATABASE_URL": database})
        exam_id = _signed(signed_in(app))
        store = store_mod.from_app(app)
        _wait_rendered(store, exam_id, "no renderer came back")


def _wait_rendered(store, exam_id: str, failure: str) -> None:
    """Until the service's renderer has stored revision 1's documents (at most 60 s)."""
    import time

    deadline = time.monotonic() + 60
    while not frozen.rendered(store, exam_id, 1):
        assert time.monotonic() < deadline, failure
        time.sleep(0.2)


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except FileNotFoundError:  # gone meanwhile (pgrep's own shell, say)
        return -1
