"""Command line: ``python -m plugin extract|assess|serve|db|deliver|users|clients|verify|
audit`` (also the ``posterior-thigh-exam`` script).

Bad input exits non-zero with a readable message (one ``linkId: message`` line per
problem), never a traceback: 1 = invalid answers, 2 = unusable input (file, JSON,
arguments), 3 = the service's own data files are broken, 4 = the database is unusable
(bad ``DATABASE_URL``, unreachable, or a schema this version cannot migrate).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import cli_audit, cli_documents, cli_report, cli_verify
from .cli_input import UsageError as _UsageError, prepared_app as _prepared_app, \
    read_json as _read_json, say as _say
from . import clients_cli, users_cli

EXIT_OK, EXIT_INVALID, EXIT_INPUT, EXIT_KNOWLEDGE, EXIT_DATABASE = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (argparse's own exits included)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2): already printed
        return exc.code if isinstance(exc.code, int) else EXIT_INPUT
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "db":
            return _db(args)
        if args.command == "pdf":
            return _pdf(args)
        if args.command == "deliver":
            return _deliver(args)
        if args.command == "verify":
            return cli_verify.run(args)
        if args.command == "audit":
            return cli_audit.run(args)
        if args.command == "report":
            return cli_report.run(args)
        if args.command == "documents":
            return cli_documents.run(args)
        if args.command == "users":
            return _users(args)
        if args.command == "clients":
            return _clients(args)
        return _extract(args) if args.command == "extract" else _assess(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m plugin",
                                     description="Posterior thigh exam plugin")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    extract = commands.add_parser(
        "extract", help="answers -> FHIR transaction Bundle on stdout",
        description="Validate answers (plain format or a QuestionnaireResponse) and print "
                    "the transaction Bundle. Exit 1: invalid answers; 2: unusable input; "
                    "3: broken data files.")
    _exam_arguments(extract, "a FHIR Patient (JSON): the record's subject; its birthDate "
                             "fills the age")
    extract.add_argument("--with-summary", action="store_true",
                         help="also render the clinician summary PDF and include it as a "
                              "DocumentReference (slower: about a second)")
    extract.add_argument("--clinician", metavar="NAME",
                         help="the examining clinician, printed in the summary")
    assess = commands.add_parser(
        "assess", help="answers -> decision support (red flags, differential, referrals)",
        description="Assess an exam: red flags and urgency, a ranked differential with the "
                    "findings for and against, and suggested referrals. A suggestion; the "
                    "clinician decides. Exit 1: invalid answers; 2: unusable input; 3: broken "
                    "data files.")
    _exam_arguments(assess, "a FHIR Patient (JSON): its birthDate gives the age; needed for "
                            "--format fhir (Conditions and ServiceRequests need a subject)")
    assess.add_argument("--format", choices=("json", "text", "fhir"), default="json",
                        help="json: the stable assessment contract (default); text: a "
                             "clinician summary; fhir: Conditions and ServiceRequests")
    pdf = commands.add_parser(
        "pdf", help="answers -> clinician summary or patient handout (PDF)",
        description="Render the clinician summary or the patient handout of an exam as a "
                    "PDF (PDF/A-3a: archival and tagged). Exit 1: invalid answers; 2: "
                    "unusable input or output file; 3: broken data files.")
    _exam_arguments(pdf, "a FHIR Patient (JSON): name, birth date and identifier in the "
                         "summary's header; its birthDate gives the age")
    pdf.add_argument("--kind", choices=("summary", "handout"), default="summary")
    pdf.add_argument("-o", "--output", metavar="OUT.pdf", required=True,
                     help="where to write the PDF (- = stdout)")
    pdf.add_argument("--clinician", metavar="NAME", help="the examining clinician (summary)")
    pdf.add_argument("--large-print", action="store_true", help="handout in large print")
    serve = commands.add_parser("serve", help="run the service under gunicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=8000)
    serve.add_argument("--workers", type=_positive, default=2)
    db = commands.add_parser(
        "db", help="database maintenance (upgrade)",
        description="Maintain the exam database named by DATABASE_URL (default: an SQLite "
                    "file in the instance folder). Exit 4: the database is unusable.")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="SUBCOMMAND")
    db_commands.add_parser(
        "upgrade", help="migrate the database to the newest schema",
        description="Create or migrate the tables (Alembic) to the newest revision. Safe "
                    "to run while other processes do the same: they take turns.")
    deliver = commands.add_parser(
        "deliver", help="send signed exams to the EHR (the outbox worker)",
        description="Post the signed exams' transaction Bundles queued in the outbox to "
                    "EHR_FHIR_BASE_URL, retrying with backoff. Safe to run as several "
                    "processes. With EHR_BACKEND_CLIENT set, each request carries a SMART "
                    "Backend Services token; EHR_PROFILE=auto picks how to send from the "
                    "EHR's CapabilityStatement. Exit 2: delivery is off (EHR_FHIR_BASE_URL "
                    "empty) or bad settings; 4: the database is unusable.")
    deliver.add_argument("--once", action="store_true",
                         help="one batch, then exit (default: keep polling)")
    deliver.add_argument("--batch", type=_positive, default=10, metavar="N",
                         help="deliveries claimed at a time (default 10)")
    deliver.add_argument("--worker-id", metavar="ID",
                         help="names this worker's claims (default: host:pid)")
    deliver.add_argument("--list", action="store_true",
                         help="list the deliveries (newest first: state, attempts, what "
                              "reached the EHR, the last error) and exit")
    deliver.add_argument("--format", choices=("text", "json"), default="text",
                         help="for --list: text (default) or json")
    deliver.add_argument("--requeue", metavar="EXAM",
                         help="send the exam's delivery again (one that could not be sent "
                              "or waits for its EHR patient): only what is missing in the "
                              "EHR goes; exit 2 when there is nothing to send again")
    cli_verify.add_parser(commands)
    cli_audit.add_parser(commands)
    cli_report.add_parser(commands)
    cli_documents.add_parser(commands)
    users_cli.add_parser(commands)
    clients_cli.add_parser(commands)
    return parser


def _exam_arguments(parser: argparse.ArgumentParser, patient_help: str) -> None:
    """The exam input every exam command takes (read by ``_with_exam_input``)."""
    parser.add_argument("answers", metavar="ANSWERS.json",
                        help="plain answers or a QuestionnaireResponse (JSON; - = stdin)")
    parser.add_argument("--patient", metavar="PATIENT.json", help=patient_help)
    parser.add_argument("--authored", metavar="ISO",
                        help="when the exam took place, for plain answers (ISO date-time "
                             "with offset); default: now")


def _port(value: str) -> int:
    port = int(value) if value.isdigit() else -1
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{value!r} is not a TCP port (1-65535)")
    return port


def _positive(value: str) -> int:
    number = int(value) if value.isdigit() else 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of at least 1")
    return number


def _extract(args: argparse.Namespace) -> int:
    from . import __version__
    from .core import bundle
    from .record import pipeline

    def run(kb: Any, data: Any, patient: Any, now: dt.datetime) -> int:
        exam = pipeline.exam_from_input(kb, data, patient=patient, now=now)
        pipeline.require_extractable(exam)
        documents = []
        if args.with_summary:
            from .adapters.documents import render  # Jinja and WeasyPrint only when asked
            documents.append(render.summary_document(
                kb, exam, patient, clinician=args.clinician, now=now,
                assessment=pipeline.assess_exam(kb, exam).as_json()))
        result = pipeline.record(kb, exam, plugin_version=__version__, recorded=now,
                                 documents=documents)
        if bundle.extracted_nothing(result):
            _say(f"warning: {bundle.NOTHING_EXTRACTED}")
        if patient is None and not _has_subject(result):
            _say(f"note: {pipeline.NO_SUBJECT}")
        return _print_json(result)

    return _with_exam_input(args, run)


def _assess(args: argparse.Namespace) -> int:
    from . import __version__
    from .core import bundle
    from .record import pipeline
    from .decision import summary

    def run(kb: Any, data: Any, patient: Any, now: dt.datetime) -> int:
        exam = pipeline.exam_from_input(kb, data, patient=patient, now=now)
        if args.format == "fhir":
            if exam.context.subject is None:
                raise _UsageError(f"--format fhir: {pipeline.NO_SUBJECT}")
            return _print_json(bundle.collection(
                pipeline.record(kb, exam, plugin_version=__version__, recorded=now),
                ("Condition", "ServiceRequest")))
        result = pipeline.assess_exam(kb, exam)
        if args.format == "text":
            return _print_text(summary.render(result))
        return _print_json(result.as_json())

    return _with_exam_input(args, run)


def _has_subject(result: dict[str, Any]) -> bool:
    return any("subject" in e["resource"] for e in result["entry"]
               if e["resource"]["resourceType"] == "QuestionnaireResponse")


def _pdf(args: argparse.Namespace) -> int:
    from .adapters.documents import render
    from .record import pipeline

    def run(kb: Any, data: Any, patient: Any, now: dt.datetime) -> int:
        exam = pipeline.exam_from_input(kb, data, patient=patient, now=now)
        if args.kind == "handout":
            document = render.handout_pdf(kb, pipeline.assess_exam(kb, exam).as_json(),
                                          large_print=args.large_print,
                                          header=render.handout_header(exam, patient, now=now))
        else:
            document = render.summary_document(
                kb, exam, patient, clinician=args.clinician, now=now,
                assessment=pipeline.assess_exam(kb, exam).as_json()).pdf
        try:
            if args.output == "-":
                sys.stdout.flush()
                sys.stdout.buffer.write(document)
                sys.stdout.flush()
            else:
                Path(args.output).write_bytes(document)
        except OSError as exc:
            raise _UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
        return EXIT_OK

    return _with_exam_input(args, run)


def _with_exam_input(args: argparse.Namespace, run: Any) -> int:
    """Read the answers and patient, load the knowledge, run; bad input of any kind
    becomes a message and an exit code, never a traceback."""
    from . import create_app, knowledge
    from .adapters.store import StoreError
    from .errors import AnswerError, InputError, KnowledgeError

    try:
        data = _read_json(args.answers)
        patient = _read_json(args.patient) if args.patient else None
        now = _authored(args.authored)
    except _UsageError as exc:
        _say(f"error: {exc}")
        return EXIT_INPUT
    try:
        # The same configuration as the service (defaults, instance file, PLUGIN_*),
        # so the CLI and the API never work from different knowledge.
        kb = create_app().extensions[knowledge.EXTENSION_KEY]
    except KnowledgeError as exc:
        _say(f"error: broken data file: {exc}")
        return EXIT_KNOWLEDGE
    except StoreError as exc:  # create_app opens the store too
        _say(f"error: {exc.message}")
        return EXIT_DATABASE
    try:
        return int(run(kb, data, patient, now))
    except _UsageError as exc:
        _say(f"error: {exc}")
        return EXIT_INPUT
    except AnswerError as exc:
        _say(f"error: {len(exc.errors)} question(s) have invalid answers:")
        for link_id, messages in exc.errors.items():
            for message in messages:
                _say(f"  {link_id}: {message}")
        return EXIT_INVALID
    except InputError as exc:
        _say(f"error: {exc.message}")
        if exc.issues != ((exc.issues[0][0], exc.message),):
            for expression, message in exc.issues:
                _say(f"  {expression or '(input)'}: {message}")
        return EXIT_INVALID


def _authored(value: str | None) -> dt.datetime:
    if value is None:
        return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    from .core.datetimes import parse_aware

    try:
        return parse_aware(value)
    except ValueError as exc:
        raise _UsageError(f"--authored: {exc}") from exc


def _print_json(resource: dict[str, Any]) -> int:
    """Write JSON as UTF-8 (what RFC 8259 requires) whatever the terminal's encoding."""
    text = json.dumps(resource, indent=2, ensure_ascii=False) + "\n"
    try:
        out = getattr(sys.stdout, "buffer", None)
        if out is not None:
            sys.stdout.flush()
            out.write(text.encode("utf-8"))
            out.flush()
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
    except BrokenPipeError:  # e.g. `| head`: the reader left; not an error of ours
        # point stdout at devnull so the interpreter's flush at exit does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


def _print_text(text: str) -> int:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK



def _serve(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication

    from .web import serving

    app, code = _prepared_app("cannot start, ", migrate=False)
    if app is None:
        return code
    # create_app migrated the schema (DATABASE_UPGRADE) once, here, before gunicorn
    # forks; the workers must not inherit this process's database connections.
    from .adapters import store as storage
    _print_setup_link(app, args)
    storage.from_app(app).dispose()
    serving.preload()  # WeasyPrint and fonts in the master; gc.freeze() what it holds

    class _Gunicorn(BaseApplication):  # type: ignore[misc]
        """gunicorn hosting the already-built app: its checks ran before binding, and the
        workers fork with the knowledge loaded once."""

        def load_config(self) -> None:
            serving.configure(self.cfg, host=args.host, port=args.port,
                              workers=args.workers)

        def load(self) -> Any:
            return app

        def run(self) -> None:
            # gunicorn's own run(), with the master that also keeps the renderer alive
            try:
                serving.Arbiter(self, serving.renderer_for(app)).run()
            except RuntimeError as error:
                _say(f"error: {error}")
                sys.exit(1)

    _Gunicorn().run()
    return EXIT_OK


def _print_setup_link(app: Any, args: argparse.Namespace) -> None:
    """On a fresh installation (no user yet): the one-time link that creates the first
    account, printed once, here in the master before the workers fork."""
    from .adapters import setup_link, store as storage

    token = setup_link.issue(storage.from_app(app), now=dt.datetime.now(dt.timezone.utc))
    if token is not None:
        host = f"[{args.host}]" if ":" in args.host else args.host
        _say("No account exists yet. Create the first one (admin and clinician) within "
             "1 hour, once, at:")
        _say(f"    http://{host}:{args.port}/setup?token={token}")


def _users(args: argparse.Namespace) -> int:
    """``users …``: accounts, with the service's own database configuration."""
    app, code = _prepared_app("", migrate=True)
    if app is None:
        return code
    return users_cli.run(args, app)


def _clients(args: argparse.Namespace) -> int:
    """``clients …``: API integrators, with the service's own database configuration."""
    app, code = _prepared_app("", migrate=True)
    if app is None:
        return code
    return clients_cli.run(args, app)


def _db(args: argparse.Namespace) -> int:
    """``db upgrade``: the schema migrated with the service's own configuration."""
    app, code = _prepared_app("", migrate=True)
    if app is None:
        return code
    _say("database is up to date")
    return EXIT_OK


#: Seconds an idle delivery worker waits before looking for due deliveries again.
DELIVER_POLL_SECONDS = 2.0


def _deliver(args: argparse.Namespace) -> int:
    """The outbox worker: claim due deliveries, post them, record the outcome."""
    import socket
    import time

    from sqlalchemy.exc import SQLAlchemyError

    from .adapters import backend, outbox, store as storage
    from .adapters.ehr_capability import Capabilities
    from .adapters.ehr_profiles import SETTINGS
    from .record import freeze

    app, code = _prepared_app("cannot deliver, ", migrate=False)
    if app is None:
        return code
    if args.list or args.requeue:
        try:
            return _deliveries(storage.from_app(app), args)
        except SQLAlchemyError as exc:  # the class name only: the text may quote data
            _say(f"error: the database is unusable: {type(exc).__name__}")
            return EXIT_DATABASE
    config = app.config
    base_url = str(config.get("EHR_FHIR_BASE_URL") or "")
    if not base_url:
        _say("delivery is off: EHR_FHIR_BASE_URL is not set")
        return EXIT_INPUT
    profile = str(config.get("EHR_PROFILE") or "auto")
    if profile not in SETTINGS:
        _say(f"error: EHR_PROFILE must be one of {', '.join(SETTINGS)}, not {profile!r}")
        return EXIT_INPUT
    try:
        policy = outbox.Policy(max_attempts=int(config["DELIVERY_MAX_ATTEMPTS"]),
                               backoff_seconds=float(config["DELIVERY_BACKOFF_SECONDS"]))
        lease = float(config["DELIVERY_LEASE_SECONDS"])
        timeout = float(config["DELIVERY_TIMEOUT_SECONDS"])
        max_entries = int(config.get("EHR_TRANSACTION_MAX_ENTRIES") or 0)
        if max_entries < 0:
            raise ValueError("EHR_TRANSACTION_MAX_ENTRIES must be 0 (learn it) or more")
    except (KeyError, TypeError, ValueError) as exc:
        _say(f"error: delivery settings: {exc}")
        return EXIT_INPUT
    worker_id = args.worker_id or f"{socket.gethostname()}:{os.getpid()}"
    store = storage.from_app(app)
    try:
        tokens = backend.delivery_token_provider(app, store)
    except ValueError as exc:  # the words name the problem, never the key
        _say(f"error: EHR_BACKEND_CLIENT: {exc}")
        return EXIT_INPUT
    # auto: the CapabilityStatement is read with the first job's token and kept a few
    # minutes for every batch of this worker
    capabilities = Capabilities(base_url, timeout=timeout) if profile == "auto" else None
    render_lease = float(config.get("DOCUMENTS_LEASE_SECONDS") or 120)
    while True:
        try:
            # a signed revision's delivery waits for its documents: render any that
            # are pending (none is, while `serve` runs its renderer)
            freeze.render_pending(store, worker_id=worker_id, lease_seconds=render_lease)
            counts = outbox.work(store, worker_id=worker_id, batch=args.batch,
                                 lease_seconds=lease, base_url=base_url, profile=profile,
                                 timeout=timeout, policy=policy, token=tokens,
                                 on_unauthorized=tokens.forget if tokens else None,
                                 capabilities=capabilities, max_entries=max_entries or None,
                                 identifier_system=str(
                                     config.get("PATIENT_IDENTIFIER_SYSTEM") or ""))
        except storage.StoreError as exc:
            _say(f"error: {exc.message}")
            return EXIT_DATABASE
        except SQLAlchemyError as exc:  # the class name only: the text may quote data
            _say(f"error: the database is unusable: {type(exc).__name__}")
            return EXIT_DATABASE
        if counts["claimed"]:
            _say(f"{worker_id}: {counts['delivered']} delivered, {counts['retry']} to retry, "
                 f"{counts['dead']} could not be sent"
                 + (f", {counts['held']} wait for the EHR patient to be confirmed"
                    if counts["held"] else ""))
        if args.once:
            return EXIT_OK
        if counts["claimed"] < args.batch:
            time.sleep(DELIVER_POLL_SECONDS)


def _deliveries(store: Any, args: argparse.Namespace) -> int:
    """``deliver --list`` and ``deliver --requeue EXAM``."""
    from .adapters import outbox
    from .errors import NotFoundError
    from .record import exams, trail

    if args.requeue:
        try:
            status = exams.send_again(store, args.requeue, by=trail.COMMAND_LINE)
        except NotFoundError:
            status = None
        if status is None:
            _say(f"error: exam {args.requeue} has no delivery that could not be sent or "
                 "waits for its EHR patient: nothing to send again")
            return EXIT_INPUT
        _say(f"{status.exam_id}: revision {status.revision} queued again; "
             f"{len(status.sent)} of {len(status.types)} resources are in the EHR already "
             "and are not sent again")
        return EXIT_OK
    rows = [{"exam": s.exam_id, "revision": s.revision, "state": s.state,
             "attempts": s.attempts, "in_ehr": len(s.sent), "resources": len(s.types),
             "next_attempt_at": s.next_attempt_at.isoformat(timespec="seconds"),
             "delivered_at": s.delivered_at.isoformat(timespec="seconds")
             if s.delivered_at else None, "last_error": s.last_error}
            for s in outbox.listing(store)]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    for row in rows:
        print(f"{row['exam']}  revision {row['revision']}  {row['state']:<9}  "
              f"attempts {row['attempts']}  in the EHR {row['in_ehr']}/{row['resources']}"
              + (f"  {row['last_error']}" if row["last_error"] else ""))
    if not rows:
        _say("no deliveries")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
