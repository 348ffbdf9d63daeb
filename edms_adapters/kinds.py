"""The EDMS kinds this project emulates: name -> adapter. A new kind is one module plus one line."""
from __future__ import annotations

from edms_adapters.adapter import EdmsAdapter


def edms_kinds() -> dict[str, type[EdmsAdapter]]:
    # Imported here so that loading one kind does not pull in every other's dependencies.
    from edms_adapters.directum import DirectumAdapter
    from edms_adapters.laiss import LaissAdapter
    from edms_adapters.rekord import RekordAdapter
    from edms_adapters.smbusiness import SmbCardAdapter

    return {a.name: a for a in (RekordAdapter, SmbCardAdapter, DirectumAdapter, LaissAdapter)}


KIND_NAMES = ("rekord", "smbusiness", "directum", "laiss")


def adapter_for(kind: str) -> EdmsAdapter:
    try:
        return edms_kinds()[kind]()
    except KeyError:
        raise ValueError(f"unknown EDMS kind {kind!r}; known: {', '.join(KIND_NAMES)}") from None
