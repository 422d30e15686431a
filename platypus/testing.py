"""Testing flows with pytest: the harness behind ``platypus flows test``.

Every flow's cases live beside it in ``<flow>.test.yaml`` (the format is in
`platypus.authoring.harness`). One test runs them all, and fails with the
readable report of each failing case::

    from platypus.testing import assert_flow_tests_pass

    def test_flows() -> None:
        assert_flow_tests_pass("flows")

A case can also be written in Python, with `run_case` or a `FlowHarness`::

    from platypus.testing import run_case

    def test_big_deals_become_orders() -> None:
        result = run_case("flows/big-deals.yaml", {
            "name": "big deal",
            "event_file": "../samples/big-deals.event.json",
            "results": {"create_order": {"id": "ORD-1"}},
            "calls": [{"to": "vendor.post", "payload": {"external_id": "006..."}}],
        })
        assert result.passed, result.report()
        assert result.calls[0].payload["amount"] == 25000

Adapters are replaced by recording fakes: nothing is sent anywhere. The event
goes through the processor the runtimes use, so validation, conditions, mapping,
retries (without waiting) and dead-lettering are the real ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from platypus.authoring.harness import (
    CaseResult,
    FlowHarness,
    RecordedCall,
    RecordingAdapter,
    TestCase,
    run_test_file,
    summary,
    test_files,
)

__all__ = [
    "CaseResult",
    "FlowHarness",
    "RecordedCall",
    "RecordingAdapter",
    "TestCase",
    "assert_flow_tests_pass",
    "run_case",
    "run_flow_tests",
]


def run_case(
    flow: Path | str, case: TestCase | Mapping[str, Any], *, project: Path | str | None = None
) -> CaseResult:
    """Run one case against the flow file ``flow``; see `FlowHarness`.

    ``case`` is a `TestCase` or the same dict a ``.test.yaml`` case holds;
    relative ``event_file`` paths resolve against the flow's folder.
    """
    return FlowHarness(flow, project=project).run(case)


def run_flow_tests(path: Path | str, *, project: Path | str | None = None) -> list[CaseResult]:
    """Run the cases of every test file for ``path`` (a flow, a test file or a folder)."""
    files = test_files(Path(path))
    root = Path(project) if project is not None else None

    async def run_all() -> list[CaseResult]:
        results: list[CaseResult] = []
        for file in files:
            results.extend(await run_test_file(file, project=root))
        return results

    return asyncio.run(run_all())


def assert_flow_tests_pass(path: Path | str, *, project: Path | str | None = None) -> None:
    """Fail (`AssertionError`) with every failing case's report unless all pass.

    ``path`` is a flow file, a test file or a folder of them. Finding no case is
    a failure too: a test that tests nothing should not pass.

    ::

        def test_flows() -> None:
            assert_flow_tests_pass("flows")
    """
    results = run_flow_tests(path, project=project)
    files = len({result.file for result in results})
    failed = [result for result in results if not result.passed]
    if not results:
        raise AssertionError(f"no flow test cases found for {path}")
    if failed:
        reports = "\n".join(result.report() for result in failed)
        raise AssertionError(f"{reports}\n{summary(results, files)}")
