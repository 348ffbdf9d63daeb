"""The hub's document-kind directory. It is data (smdo/data/document_kinds.json), not code.

A packet names its kind by code ("01", the field notes) or by name ("Письмо", as the real clients
write it); both are matched against the directory.
"""
from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

DEFAULT_PATH = Path(__file__).parent / "data" / "document_kinds.json"
# An operator may publish another directory without touching the package.
ENV_VARIABLE = "SMDO_DOCUMENT_KINDS"


def load_document_kinds(path: str | Path) -> dict[str, str]:
    """Read a directory file: {"kinds": {code: name}}."""
    with open(path, encoding="utf-8") as f:
        content = json.load(f)
    kinds = content["kinds"]
    if not isinstance(kinds, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in kinds.items()):
        raise ValueError(f"{path}: 'kinds' must map code strings to name strings")
    return dict(kinds)


@lru_cache(maxsize=None)
def _cached(path: str) -> Mapping[str, str]:
    return MappingProxyType(load_document_kinds(path))


def document_kinds() -> dict[str, str]:
    """The directory in use: code -> name (a fresh dict; the file is read once)."""
    return dict(_known())


def _known() -> Mapping[str, str]:
    return _cached(os.environ.get(ENV_VARIABLE) or str(DEFAULT_PATH))


@lru_cache(maxsize=None)
def _codes_by_name(path: str) -> Mapping[str, str]:
    # Names compared without case and surrounding blanks: clients type them by hand.
    return MappingProxyType({name.strip().casefold(): code for code, name in _cached(path).items()})


def kind_code(kind: str) -> str | None:
    """The directory code of a kind given by code or by name; None when it is in neither."""
    if kind in _known():
        return kind
    return _codes_by_name(os.environ.get(ENV_VARIABLE) or str(DEFAULT_PATH)).get(kind.strip().casefold())


def is_known_kind(kind: str) -> bool:
    """Cheap membership test for the hot path: a code or a name of the directory."""
    return kind_code(kind) is not None
