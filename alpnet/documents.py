"""YAML and JSON documents that a user wrote: parsed with duplicate keys refused.

Both formats let a key appear twice in one mapping, and both parsers keep the last value
without a word: a case with ``alp`` given twice, or two ``labs:`` sections, would be read
with one of them silently dropped. These readers raise instead, naming the key and, for
YAML, the line.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

__all__ = ["DuplicateKeyError", "load_json", "load_yaml"]


class DuplicateKeyError(ValueError):
    """A key given twice in one mapping."""


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
    DuplicateKeyError
        If a mapping gives a key twice.
    """
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


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
    DuplicateKeyError
        If an object gives a key twice.
    """
    return json.loads(text, object_pairs_hook=_unique_pairs, **options)
