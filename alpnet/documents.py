"""YAML and JSON documents that a user wrote: parsed with duplicate keys refused.

Both formats let a key appear twice in one mapping, and both parsers keep the last value
without a word: a case with ``alp`` given twice, or two ``labs:`` sections, would be read
with one of them silently dropped. These readers raise instead, naming the key and, for
YAML, the line.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import yaml

__all__ = ["DocumentError", "DuplicateKeyError", "MAX_DEPTH", "load_json", "load_yaml"]

#: How deeply mappings and lists may nest in a document. A case is three levels deep; far
#: deeper nesting is a broken or hostile file, refused before Python's recursion limit is met.
MAX_DEPTH = 64


_TOO_DEEP = f"mappings or lists nest more than {MAX_DEPTH} levels deep"


class DocumentError(ValueError):
    """A document that parses to something alpnet will not read (the message says why)."""


class DuplicateKeyError(DocumentError):
    """A key given twice in one mapping."""


def _parsed(parse: Any, *args: Any, **options: Any) -> Any:
    """``parse(*args, **options)`` with Python's own limits turned into a :class:`DocumentError`."""
    try:
        data = parse(*args, **options)
    except RecursionError:
        raise DocumentError(_TOO_DEEP) from None
    except ValueError as exc:
        if "integer string conversion" in str(exc):  # an integer of thousands of digits
            raise DocumentError(f"a number has more than {sys.get_int_max_str_digits()} digits") from None
        raise
    _check_depth(data)
    return data


def _check_depth(data: Any) -> None:
    """Refuse a document nested deeper than :data:`MAX_DEPTH` (walked without recursion)."""
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = list(node.values())
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > MAX_DEPTH:
            raise DocumentError(_TOO_DEEP)
        stack.extend((child, depth + 1) for child in children)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key that a mapping already has."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # '<<' merges may override on purpose
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in seen
            except TypeError:  # an unhashable key: the base class reports it
                break
            if repeated:
                raise DuplicateKeyError(f"the key {key!r} is given twice in one mapping "
                                        f"(line {key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """Parse one YAML document (safe types only).

    Raises
    ------
    yaml.YAMLError
        If the text is not valid YAML.
    DocumentError
        If a mapping gives a key twice (:class:`DuplicateKeyError`), a number has thousands
        of digits, or the document nests deeper than :data:`MAX_DEPTH`.
    """
    return _parsed(yaml.load, text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(f"the key {key!r} is given twice in one object")
        out[key] = value
    return out


def load_json(text: str | bytes, **options: Any) -> Any:
    """Parse a JSON document; ``options`` go to :func:`json.loads` (e.g. ``parse_constant``).

    Raises
    ------
    json.JSONDecodeError
        If the text is not valid JSON.
    DocumentError
        If an object gives a key twice (:class:`DuplicateKeyError`), a number has thousands
        of digits, or the document nests deeper than :data:`MAX_DEPTH`.
    """
    return _parsed(json.loads, text, object_pairs_hook=_unique_pairs, **options)
