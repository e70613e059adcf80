"""Command line: ``python -m plugin extract|serve``.

Bad input exits non-zero with a readable message (one ``linkId: message`` line per
problem), never a traceback: 1 = invalid answers, 2 = unusable input (file, JSON,
arguments), 3 = the service's own data files are broken.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any, Sequence

EXIT_INVALID, EXIT_INPUT, EXIT_KNOWLEDGE = 1, 2, 3


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plugin",
                                     description="Posterior thigh exam plugin")
    commands = parser.add_subparsers(dest="command", required=True)
    extract = commands.add_parser("extract", help="answers -> FHIR transaction Bundle")
    extract.add_argument("answers", help="plain answers or a QuestionnaireResponse (JSON; - = stdin)")
    extract.add_argument("--patient", help="a FHIR Patient (JSON): the record's subject")
    extract.add_argument("--authored", help="when the exam took place (ISO date-time with "
                                            "offset); default: now")
    serve = commands.add_parser("serve", help="run the service under gunicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    if args.command == "extract":
        return _extract(args)
    return _serve(args)


def _extract(args: argparse.Namespace) -> int:
    from . import __version__, knowledge
    from .config import DEFAULTS
    from .core import bundle, pipeline
    from .errors import AnswerError, InputError, KnowledgeError, NotFoundError

    try:
        data = _read_json(args.answers)
        patient = _read_json(args.patient) if args.patient else None
        now = _authored(args.authored)
    except _UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    try:
        kb = knowledge.load(DEFAULTS["QUESTIONNAIRES_DIR"], DEFAULTS["MAPPINGS_DIR"])
    except KnowledgeError as exc:
        print(f"error: broken data file: {exc}", file=sys.stderr)
        return EXIT_KNOWLEDGE
    try:
        exam = pipeline.exam_from_input(kb, data, patient=patient, now=now)
        pipeline.require_extractable(exam)
    except AnswerError as exc:
        print(f"error: {len(exc.errors)} question(s) have invalid answers:", file=sys.stderr)
        for link_id, messages in exc.errors.items():
            for message in messages:
                print(f"  {link_id}: {message}", file=sys.stderr)
        return EXIT_INVALID
    except (InputError, NotFoundError) as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        for expression, message in getattr(exc, "issues", ())[1:] or ():
            print(f"  {expression}: {message}", file=sys.stderr)
        return EXIT_INVALID
    result = bundle.extraction(exam, kb.mappings_for(exam.form), plugin_version=__version__,
                               recorded=now.isoformat(timespec="seconds"))
    json.dump(result, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")
    return 0


class _UsageError(Exception):
    """A file or argument the CLI cannot use."""


def _read_json(name: str) -> Any:
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise _UsageError(f"cannot read {name}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise _UsageError(f"{name} is not UTF-8 text") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _UsageError(f"{name} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                          f"{exc.msg})") from exc


def _authored(value: str | None) -> dt.datetime:
    if value is None:
        return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    from .core.datetimes import parse_aware

    try:
        return parse_aware(value)
    except ValueError as exc:
        raise _UsageError(f"--authored: {exc}") from exc


def _serve(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication

    from . import create_app
    from .errors import KnowledgeError

    try:
        app = create_app()
    except KnowledgeError as exc:
        print(f"error: cannot start, broken data file: {exc}", file=sys.stderr)
        return EXIT_KNOWLEDGE

    class _Gunicorn(BaseApplication):  # type: ignore[misc]
        """gunicorn hosting the already-built app (its checks ran before binding)."""

        def load_config(self) -> None:
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("accesslog", "-")
            # No query string or body in the log: they may identify a patient.
            self.cfg.set("access_log_format", '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms')

        def load(self) -> Any:
            return app

    _Gunicorn().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
