"""Runs the cases in order, with a progress line per case, and collects the results."""
from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from smdo.conformance import SUITE_VERSION
from smdo.conformance.cases import CASES, FACTS, Case, CaseFailed, CaseSkipped, Context
from smdo.conformance.routes import RouteError

PASSED, FAILED, SKIPPED, ERROR = "passed", "failed", "skipped", "error"


@dataclass(frozen=True)
class CaseResult:
    name: str
    title: str
    outcome: str  # passed | failed | skipped | error
    reason: str  # what passed, or what to fix
    seconds: float


@dataclass(frozen=True)
class SuiteResult:
    subscriber: str
    route: str
    suite_version: str
    started: datetime
    finished: datetime
    results: tuple[CaseResult, ...]

    @property
    def passed(self) -> bool:
        """Certification needs every case to pass: a skipped case was not shown to work."""
        return bool(self.results) and all(r.outcome == PASSED for r in self.results)

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)

    def summary(self) -> dict[str, object]:
        return {"total": len(self.results), "passed": self.count(PASSED), "failed": self.count(FAILED),
                "skipped": self.count(SKIPPED), "errors": self.count(ERROR),
                "failed_cases": [r.name for r in self.results if r.outcome in (FAILED, ERROR)]}


def _missing(ctx: Context, case: Case) -> str | None:
    for fact in case.needs:
        if not ctx.facts.get(fact, False):
            source, meaning = FACTS[fact]
            return f"not run: needs {meaning}, which case {source} did not get"
    return None


async def run_suite(ctx: Context, cases: Sequence[Case] = CASES,
                    progress: Callable[[str], None] = lambda line: None) -> SuiteResult:
    started = datetime.now(timezone.utc)
    results: list[CaseResult] = []
    ctx.say = progress
    progress(f"conformance suite {SUITE_VERSION}: {ctx.code}, {ctx.route.description}")
    for number, case in enumerate(cases, 1):
        progress(f"[{number}/{len(cases)}] {case.name}: {case.title} ...")
        begin = time.monotonic()
        skip = _missing(ctx, case)
        if skip is not None:
            outcome, reason = SKIPPED, skip
        else:
            try:
                outcome, reason = PASSED, await case.run(ctx)
            except CaseFailed as exc:
                outcome, reason = FAILED, str(exc)
            except CaseSkipped as exc:  # needs something only the integrator can provide
                outcome, reason = SKIPPED, f"not run: {exc}"
            except RouteError as exc:  # the suite could not even hand the packet over
                outcome, reason = ERROR, str(exc)
            except Exception as exc:  # a bug or an unreadable answer: report it, keep going
                outcome, reason = ERROR, f"{type(exc).__name__}: {exc} ({traceback.format_exc(limit=2).splitlines()[-1]})"
        result = CaseResult(case.name, case.title, outcome, reason, time.monotonic() - begin)
        results.append(result)
        progress(f"[{number}/{len(cases)}] {case.name}: {outcome.upper()} ({result.seconds:.1f} s) {reason}")
    return SuiteResult(ctx.code, ctx.route.description, SUITE_VERSION, started, datetime.now(timezone.utc),
                       tuple(results))
