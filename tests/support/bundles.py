"""Reading Bundles in tests, independently of the product's own Bundle code (a walker
shared with the code under test would hide its own mistakes)."""
from __future__ import annotations

from typing import Any


def of_type(bundle: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    """The resources of one type, in entry order."""
    return [e["resource"] for e in bundle.get("entry", [])
            if e["resource"]["resourceType"] == resource_type]


def by_url(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """fullUrl -> resource."""
    return {e["fullUrl"]: e["resource"] for e in bundle.get("entry", [])}


def references(node: Any) -> list[str]:
    """Every ``reference`` string anywhere in a JSON tree."""
    if isinstance(node, dict):
        own = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return own + [r for v in node.values() for r in references(v)]
    if isinstance(node, list):
        return [r for v in node for r in references(v)]
    return []
