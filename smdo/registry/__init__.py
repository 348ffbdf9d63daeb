"""The subscriber registry: who may exchange packets through the hub, with which certificates.

- `model`: subscribers, statuses and their lifecycle, certificates, history, field rules;
- `policy`: `RegistrySnapshot`, the hub's immutable view, and `authorise` (who may send to whom);
- `store`: `Registry`, the SQL (SQLite or PostgreSQL via `sql`), and `registry_store(url)`.
"""
from signing.keys import certificate_fingerprint as fingerprint
from smdo.registry.model import (
    CODE_PATTERN,
    TEST_COUNTERPART_CODE,
    TRANSITIONS,
    UNDER_TEST,
    BoundCertificate,
    Conclusion,
    DuplicateSubscriber,
    HistoryEntry,
    IllegalTransition,
    InvalidField,
    RegistryError,
    Subscriber,
    SubscriberStatus,
    UnknownSubscriber,
)
from smdo.registry.policy import RegistrySnapshot
from smdo.registry.store import Registry, registry_store

__all__ = [
    "CODE_PATTERN", "TEST_COUNTERPART_CODE", "TRANSITIONS", "UNDER_TEST", "BoundCertificate", "Conclusion",
    "DuplicateSubscriber", "HistoryEntry", "IllegalTransition", "InvalidField", "Registry", "RegistryError",
    "RegistrySnapshot", "Subscriber", "SubscriberStatus", "UnknownSubscriber", "fingerprint", "registry_store",
]
