"""The FHIR REST conventions both FHIR API modules follow, in one place.

``fhir_api`` (definitions and operations) and ``fhir_records`` (the stored exams and what
is derived from them) read request bodies, search parameters and paging the same way and
answer with the same Bundles, so those rules live here once: JSON bodies (read through
``web.boundary``), ``_format``, strict search parameters unless ``Prefer: handling=lenient``,
token and reference values, ``_count``/``_offset`` paging with next links, searchsets
without empty arrays, and the names of an operation's Parameters. Every refusal is raised
as a PluginError and rendered once, as an OperationOutcome, by ``web.errors``.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from flask import current_app, request
from werkzeug.exceptions import NotAcceptable
from werkzeug.routing import BaseConverter

from ..adapters import store as store_mod
from ..adapters.store import TimeRange
from ..core import outcome
from ..errors import InputError
from ..knowledge import EXTENSION_KEY, KnowledgeBase
from . import boundary

#: ``_format`` values that ask for what we serve (FHIR JSON); others get 406.
JSON_FORMATS = ("json", "application/json", "application/fhir+json")
#: Paged searches: ``_count`` default and cap (``_offset`` is ours: the page links use it).
DEFAULT_COUNT, MAX_COUNT = 50, 200
PAGING = ("_count", "_offset")


class InstanceId(BaseConverter):
    """A resource id in a path: never ``$...``, so ``GET .../$extract`` stays a 405, not a
    read of a resource called "$extract"."""

    regex = r"[^$/][^/]*"


def register_converter(state: Any) -> None:
    """``record_once`` hook: the ``fhir_id`` converter on the app's URL map (idempotent)."""
    state.app.url_map.converters.setdefault("fhir_id", InstanceId)


def kb() -> KnowledgeBase:
    return current_app.extensions[EXTENSION_KEY]


def store() -> store_mod.Store:
    return store_mod.from_app(current_app)


def base_url() -> str:
    return (current_app.config.get("FHIR_BASE_URL") or request.url_root + "fhir").rstrip("/")


def only_json() -> None:
    """``before_request``: honour ``_format``; we serve FHIR JSON only, and say so rather
    than ignore it."""
    wanted = request.args.get("_format")
    if wanted is not None and wanted.split(";")[0].strip() not in JSON_FORMATS:
        raise NotAcceptable(f"_format={wanted} is not served; this server speaks FHIR JSON "
                            f"({', '.join(JSON_FORMATS)}).")


# --- search parameters ----------------------------------------------------------------------

def lenient() -> bool:
    """``Prefer: handling=lenient`` (FHIR search): ignore unknown parameters."""
    prefer = request.headers.get("Prefer", "")
    return any(p.strip().lower().replace(" ", "") == "handling=lenient"
               for p in re.split(r"[,;]", prefer))


def search_args(allowed: Sequence[str],
                resource_type: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(the supported parameters with a value, the unsupported ones ignored). Unsupported
    parameters are refused (400) unless the client asked for lenient handling: a client
    that believes it filtered must not silently receive everything."""
    unknown = sorted(set(request.args) - set(allowed))
    if unknown and not lenient():
        supported = ", ".join(a for a in allowed if a != "_format") or "no parameters"
        raise InputError(f"Unsupported search parameter(s): {', '.join(unknown)}; "
                         f"{resource_type} supports {supported}.", code="not-supported")
    args = [(k, v) for k, v in request.args.items(multi=True)
            if k in allowed and k != "_format" and v != ""]  # an empty value is no filter
    return args, unknown


def whole(args: Sequence[tuple[str, str]], name: str, default: int) -> int:
    values = [v for k, v in args if k == name]
    if len(values) > 1:
        raise InputError(f"{name} may be given only once.", expression=name)
    if not values:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", values[0]):
        raise InputError(f"{name} must be a whole number, not {values[0]!r}.",
                         expression=name)
    return int(values[0])


def split_values(value: str) -> list[str]:
    """A parameter's comma-separated values (OR), honouring FHIR's ``\\,`` escape."""
    return [v.replace("\\,", ",") for v in re.split(r"(?<!\\),", value)]


def token(value: str) -> tuple[str | None, str | None]:
    """A token value as (system, code): ``code`` -> (None, code) (any system),
    ``system|code``, ``|code`` -> ("", code) (no system), ``system|`` -> (system, None)
    (any code of the system). ``\\|`` is a literal bar."""
    parts = re.split(r"(?<!\\)\|", value.strip())
    unescape = [p.replace("\\|", "|").replace("\\\\", "\\") for p in parts]
    if len(unescape) == 1:
        return None, unescape[0] or None
    if len(unescape) > 2:
        raise InputError(f"{value!r} is not a token (code, system|code or |code).")
    return unescape[0], unescape[1] or None


def patient_ids(args: Sequence[tuple[str, str]]) -> set[str] | None:
    """The Patient ids the ``patient``/``subject`` parameters allow (repeats AND, commas
    OR); None when neither was given."""
    found: set[str] | None = None
    for name, value in args:
        if name in ("patient", "subject"):
            ids = {i for i in map(patient_id, split_values(value)) if i}
            found = ids if found is None else found & ids
    return found


def patient_id(value: str) -> str | None:
    """The Patient id a reference parameter names (``id``, ``Patient/id`` or the absolute
    URL on this server); None when it names anything else (it then matches nothing)."""
    value = value.strip().removeprefix(base_url() + "/")
    parts = value.split("/")
    if len(parts) == 1:
        return value or None
    if parts[0] == "Patient" and (len(parts) == 2
                                  or (len(parts) == 4 and parts[2] == "_history")):
        return parts[1] or None
    return None


# --- dates ---------------------------------------------------------------------------------

#: A FHIR date search value: optional prefix, then a date-time at any precision.
DATE_VALUE = re.compile(r"(?P<prefix>eq|ne|gt|lt|ge|le|sa|eb|ap)?"
                        r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
                        r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?"
                        r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?")


def date_ranges(value: str, name: str) -> list[TimeRange]:
    """The half-open UTC ranges a FHIR date search value matches (a stored time is a
    point: gt/sa mean after the value's whole precision, lt/eb before its start)."""
    match = DATE_VALUE.fullmatch(value.strip())
    if match is None:
        raise InputError(f"{name}={value!r} is not a FHIR date search value "
                         "(e.g. ge2026-01-01 or lt2026-11-21T10:30:00Z).",
                         expression=name)
    g = match.groupdict()
    prefix = g["prefix"] or "eq"
    if prefix == "ap":
        raise InputError(f"{name}: the 'ap' prefix is not supported.",
                         expression=name, code="not-supported")
    try:
        low, high = (b.astimezone(dt.timezone.utc) for b in _bounds(g))
    except (ValueError, OverflowError):
        raise InputError(f"{name}={value!r} is not a valid date.",
                         expression=name) from None
    return {"eq": [(low, high)], "ne": [(None, low), (high, None)], "lt": [(None, low)],
            "eb": [(None, low)], "le": [(None, high)], "gt": [(high, None)],
            "sa": [(high, None)], "ge": [(low, None)]}[prefix]


def _bounds(g: Mapping[str, str | None]) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a date value at its own precision."""
    tz = dt.timezone.utc
    if g["tz"] and g["tz"] != "Z":
        sign = -1 if g["tz"][0] == "-" else 1
        hours, minutes = int(g["tz"][1:3]), int(g["tz"][4:6])
        tz = dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
    year = int(g["y"] or 0)
    if g["m"] is None:
        return (dt.datetime(year, 1, 1, tzinfo=tz), dt.datetime(year + 1, 1, 1, tzinfo=tz))
    month = int(g["m"])
    if g["d"] is None:
        start = dt.datetime(year, month, 1, tzinfo=tz)
        end = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
        return start, end
    day = dt.datetime(year, month, int(g["d"]), tzinfo=tz)
    if g["H"] is None:
        return day, day + dt.timedelta(days=1)
    start = day.replace(hour=int(g["H"]), minute=int(g["M"] or 0), second=int(g["S"] or 0))
    if g["S"] is None:
        return start, start + dt.timedelta(minutes=1)
    if g["f"] is None:
        return start, start + dt.timedelta(seconds=1)
    digits = min(len(g["f"]), 6)
    start = start.replace(microsecond=int(g["f"][:digits].ljust(6, "0")))
    return start, start + dt.timedelta(microseconds=10 ** (6 - digits))


# --- answers: Bundles and paging ------------------------------------------------------------

def paging(args: Sequence[tuple[str, str]]) -> tuple[int, int]:
    """(count, offset) of a paged search."""
    return (min(whole(args, "_count", DEFAULT_COUNT), MAX_COUNT), whole(args, "_offset", 0))


def searchset(resource_type: str, args: Sequence[tuple[str, str]], *, total: int,
              count: int, offset: int, entries: list[dict[str, Any]],
              ignored: Sequence[str] = ()) -> dict[str, Any]:
    """A paged searchset: self (what was applied), next and previous links, the match
    entries, and a warning entry naming the parameters ignored under lenient handling."""
    base = base_url()
    kept = [(k, v) for k, v in args if k not in PAGING]

    def link(relation: str, at: int) -> dict[str, str]:
        query = urlencode([*kept, ("_count", str(count)), ("_offset", str(at))])
        return {"relation": relation, "url": f"{base}/{resource_type}?{query}"}

    links = [link("self", offset)]
    if offset + count < total and count > 0:
        links.append(link("next", offset + count))
    if offset > 0:
        links.append(link("previous", max(0, offset - count)))
    entries = list(entries)
    if ignored:
        entries.append({"resource": outcome.information(
            f"Ignored unsupported search parameter(s): {', '.join(ignored)} "
            "(Prefer: handling=lenient).", severity="warning"),
            "search": {"mode": "outcome"}})
    return bundle("searchset", total, links, entries)


def bundle(type_: str, total: int, links: list[dict[str, str]],
           entries: list[dict[str, Any]]) -> dict[str, Any]:
    """A Bundle; no ``entry`` at all when there is none (FHIR JSON forbids empty arrays)."""
    result: dict[str, Any] = {"resourceType": "Bundle", "type": type_, "total": total,
                              "link": links}
    if entries:
        result["entry"] = entries
    return result


# --- request bodies and operation Parameters ------------------------------------------------

def json_body() -> Any:
    """The request body as strictly checked JSON (``web.boundary``), or an InputError
    saying exactly why not."""
    try:
        return boundary.json_body()
    except InputError as error:
        if error.code == "required":  # empty: say what this API takes
            raise InputError("The request body is empty; send a Parameters resource, a "
                             "QuestionnaireResponse or plain answers.",
                             code="required") from None
        raise


def parameter_parts(parameters: Mapping[str, Any], allowed: Sequence[str], *,
                    repeatable: Sequence[str] = (), key: str = "parameter",
                    where: str = "Parameters.parameter") -> dict[str, list[Mapping[str, Any]]]:
    """An operation's parameters by name (or, with ``key="part"``, a parameter's parts);
    unknown names, and repeats of a name that may appear once, are refused."""
    parts = parameters.get(key, [])
    if not isinstance(parts, list):
        raise InputError(f"{where} must be a list.", expression=where)
    by_name: dict[str, list[Mapping[str, Any]]] = {}
    for n, part in enumerate(parts):
        name = part.get("name") if isinstance(part, Mapping) else None
        at = f"{where}[{n}]"
        if not isinstance(name, str):
            raise InputError("Each parameter needs a name.", expression=f"{at}.name")
        if name not in allowed:
            raise InputError(f"Unknown parameter {name!r}; this operation takes "
                             f"{', '.join(allowed)}.", expression=f"{at}.name",
                             code="not-supported")
        if name in by_name and name not in repeatable:
            raise InputError(f"Parameter {name!r} may appear only once.",
                             expression=f"{at}.name")
        by_name.setdefault(name, []).append(part)
    return by_name


def part_resource(parts: Mapping[str, Sequence[Mapping[str, Any]]],
                  name: str) -> Mapping[str, Any] | None:
    """The JSON object carried in ``resource`` of the named part, if the part is given."""
    part = (parts.get(name) or [None])[0]
    if part is None:
        return None
    resource = part.get("resource")
    if not isinstance(resource, Mapping):
        raise InputError(f"Parameter {name!r} must carry its content as a resource "
                         "(a JSON object in 'resource').",
                         expression=f"Parameters.parameter.where(name='{name}').resource")
    return resource
