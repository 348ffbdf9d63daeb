"""The registry's side of a conformance run: get the subscriber and the counterpart ready, then
store the hub-signed conclusion (a pass moves a subscriber in testing to certified)."""
from __future__ import annotations

from cryptography import x509

from signing.keys import Signer, certificate_fingerprint
from smdo.conformance.conclusion import conclusion_xml
from smdo.conformance.packets import COUNTERPART
from smdo.conformance.runner import SuiteResult
from smdo.registry import (
    TEST_COUNTERPART_CODE, Conclusion, Registry, RegistryError, Subscriber, SubscriberStatus as S,
)
from smdo.unp import make_unp

# The counterpart is the hub itself; its registry entry needs a well-formed UNP, not a real one.
COUNTERPART_UNP = make_unp("19000000")


def prepare_subscriber(registry: Registry, code: str, *, actor: str) -> Subscriber:
    """The subscriber to test, moved into testing when it is registered (or certified, for a re-test)."""
    sub = registry.require(code)
    if sub.status in (S.SUSPENDED, S.REVOKED):
        raise RegistryError(f"subscriber {code} is {sub.status.value}: resume it before testing it "
                            "(a revoked subscriber registers again)")
    if sub.status in (S.REGISTERED, S.CERTIFIED):
        sub = registry.set_status(code, S.TESTING, actor=actor, reason="conformance run started")
    return sub


def prepare_counterpart(registry: Registry, certificate: x509.Certificate, push_url: str, *, actor: str,
                        tls_certificate: x509.Certificate | None = None) -> None:
    """Register (or update) SMDO-TEST: active, bound to the suite's certificate, pushed to at `push_url`.

    A separate TLS client certificate (a bign PKI: OpenSSL cannot do bign) is bound too, so the hub
    knows the suite by it when it reads the details of what it sent (GET /smdo/v1/transactions/...).
    """
    existing = registry.get(TEST_COUNTERPART_CODE)
    if existing is None:
        registry.add_subscriber(TEST_COUNTERPART_CODE, name=COUNTERPART.name or TEST_COUNTERPART_CODE,
                                unp=COUNTERPART_UNP, push_url=push_url,
                                certificates=[certificate] + ([tls_certificate] if tls_certificate is not None
                                                              and tls_certificate != certificate else []),
                                edms_product=COUNTERPART.system, edms_version=COUNTERPART.system_details,
                                sys_id=COUNTERPART.sys_id, status=S.ACTIVE, actor=actor,
                                reason="the hub's test counterpart for conformance runs")
        return
    if existing.push_url != push_url:
        registry.update_subscriber(TEST_COUNTERPART_CODE, actor=actor, reason="conformance run listener",
                                   push_url=push_url)
    for cert, why in ((certificate, "conformance suite key"), (tls_certificate, "conformance suite TLS client")):
        bound = registry.require(TEST_COUNTERPART_CODE).cert_fingerprints
        if cert is not None and certificate_fingerprint(cert) not in bound:
            registry.add_certificate(TEST_COUNTERPART_CODE, cert, actor=actor, reason=why)
    if existing.status is not S.ACTIVE:
        raise RegistryError(f"the test counterpart {TEST_COUNTERPART_CODE} is {existing.status.value}, not active")


def record_result(registry: Registry, result: SuiteResult, hub: Signer, *, actor: str) -> Conclusion:
    """Sign the conclusion with the hub's key and store it; a pass certifies a subscriber in testing."""
    return registry.record_conclusion(result.subscriber, suite_version=result.suite_version, passed=result.passed,
                                      summary=result.summary(), document=conclusion_xml(result, hub), actor=actor,
                                      at=result.finished)
