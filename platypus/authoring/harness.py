"""Flow tests: cases kept beside a flow, run through the real processor with fake adapters.

A flow ``flows/big-deals.yaml`` has its tests in ``flows/big-deals.test.yaml``::

    cases:
      - name: a big deal becomes an order
        event_file: ../samples/big-deals.event.json   # or event: {...} inline
        patch: {data: {amount: 25000}}                # merged into the event (optional)
        results:                                      # what each step's call returns
          create_order: {id: ORD-1}
        calls:                                        # the adapter calls expected, in order
          - to: vendor.post
            params: {path: /orders}                   # compared only when given
            payload: {external_id: 006Kd00000A1b2cAAA, amount: 25000}

      - name: small deals are filtered out
        event_file: ../samples/big-deals.event.json
        patch: {data: {amount: 10}}
        filtered: true

      - name: a refused order is dead-lettered
        event_file: ../samples/big-deals.event.json
        fail:                                         # make a step's call raise
          create_order: {error: PermanentError, message: 400 Bad Request}
        dead_lettered: {step: create_order, error: PermanentError, message_contains: "400"}

Each case runs its event through `platypus.runtime.processor.Processor`, the code
the embedded and Kafka runtimes run, so schema validation, conditions, mapping,
the action's input check, retries (with no waiting) and the dead-letter decision
are the real ones. Only the adapters are replaced: a `RecordingAdapter` per
connection records each call and answers from ``results`` (``{}`` by default) or
raises what ``fail`` says. Nothing is sent anywhere.
"""

from __future__ import annotations

import asyncio
import copy
import difflib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import structlog
import structlog.testing
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from platypus.adapter import Action, Adapter, AdapterRegistry, Request
from platypus.config import CONFIG_FILE, ProjectConfig, load_config
from platypus.exceptions import (
    ConfigurationError,
    FlowError,
    FlowLoadError,
    MissingDependencyError,
    PermanentError,
    PlatypusError,
    RetryableError,
)
from platypus.flow._yaml import Locations, YamlPath, parse_yaml
from platypus.flow.loader import FLOW_SUFFIXES, TEST_SUFFIXES, load_flow
from platypus.flow.model import FlowSpec
from platypus.keys import ordering_key
from platypus.records import Record
from platypus.runtime.connections import Connections
from platypus.runtime.memory import MemoryLedger
from platypus.runtime.processor import FlowOutcome, Processor
from platypus.schema_registry import SchemaRegistry

__all__ = [
    "CallSpec",
    "CaseRead",
    "CaseResult",
    "DeadLetteredSpec",
    "FailSpec",
    "FlowHarness",
    "FlowTestFile",
    "RecordedCall",
    "RecordingAdapter",
    "TestCase",
    "case_problems",
    "find_project_root",
    "flow_for_tests",
    "read_test_file",
    "test_files",
]


class CallSpec(BaseModel):
    """One adapter call a case expects: ``to`` and ``payload``, ``params`` if given."""

    model_config = ConfigDict(extra="forbid")

    to: str = Field(description="connection.action the call goes to, e.g. vendor.post.")
    step: str | None = Field(default=None, description="The step making it (compared if given).")
    params: dict[str, Any] | None = Field(
        default=None, description="Compared only if given, and only the keys given."
    )
    payload: Any = Field(default=None, description="The rendered payload, exactly.")


class FailSpec(BaseModel):
    """Make a step's call raise, as the vendor's adapter would."""

    model_config = ConfigDict(extra="forbid")

    error: Literal["RetryableError", "PermanentError", "MissingDependencyError"] = Field(
        default="PermanentError",
        description=(
            "What the call raises: retried, not retried, or waiting for a record that "
            "does not exist yet (retried for the step's dependency_wait)."
        ),
    )
    message: str = Field(
        default="the fake vendor refused the call", description="The error's message."
    )
    times: int | None = Field(
        default=None, ge=1, description="Fail this many attempts, then answer; default: all."
    )
    status_code: int | None = Field(default=None, description="The vendor's HTTP status, if any.")

    @model_validator(mode="after")
    def _missing_record_appears(self) -> FailSpec:
        # Backoffs take no time in tests, so a record that never appears would be
        # waited for until dependency_wait had passed on the clock.
        if self.error == "MissingDependencyError" and self.times is None:
            raise ValueError(
                "a MissingDependencyError needs times: the attempts before the record exists"
            )
        return self


class DeadLetteredSpec(BaseModel):
    """How a case expects the event to fail: at which step, with which error."""

    model_config = ConfigDict(extra="forbid")

    step: str | None = Field(default=None, description="The step that failed (compared if given).")
    error: str | None = Field(default=None, description="Class name, e.g. PermanentError.")
    message_contains: str | None = Field(
        default=None, description="Text the dead letter's message contains."
    )
    attempts: int | None = Field(default=None, description="Attempts made (compared if given).")


class TestCase(BaseModel):
    """One case of a flow test file."""

    __test__: ClassVar[bool] = False  # not a pytest test class
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="What the case shows, as a sentence.")
    event: dict[str, Any] | None = Field(default=None, description="The CloudEvent, inline.")
    event_file: str | None = Field(
        default=None, description="A JSON file holding the event, relative to the test file."
    )
    patch: dict[str, Any] = Field(
        default_factory=dict, description="Merged into the event, e.g. {data: {amount: 10}}."
    )
    results: dict[str, Any] = Field(
        default_factory=dict, description="What each step's call returns, by step name."
    )
    fail: dict[str, FailSpec] = Field(
        default_factory=dict, description="Steps whose call raises, by step name."
    )
    calls: list[CallSpec] | None = Field(
        default=None, description="The adapter calls expected, in order (all of them)."
    )
    delivered: bool = Field(
        default=False,
        description="Expect the event to be delivered; calls are compared only if given.",
    )
    filtered: bool = Field(default=False, description="Expect the flow to filter the event out.")
    dead_lettered: DeadLetteredSpec | None = Field(
        default=None, description="Expect the event to be dead-lettered, and how."
    )
    discarded: bool = Field(default=False, description="Expect the event to be discarded.")

    @model_validator(mode="after")
    def _one_event_one_outcome(self) -> TestCase:
        if (self.event is None) == (self.event_file is None):
            raise ValueError("give the event either inline (event:) or as event_file:")
        outcomes = [self.delivered, self.filtered, self.dead_lettered is not None, self.discarded]
        if sum(outcomes) > 1:
            raise ValueError(
                "expect at most one of delivered, filtered, dead_lettered and discarded"
            )
        if not any(outcomes) and self.calls is None:
            raise ValueError(
                "say what to expect: calls, delivered, filtered, dead_lettered or discarded"
            )
        return self


class FlowTestFile(BaseModel):
    """A ``<flow>.test.yaml`` file: optionally the flow's name, and its cases."""

    model_config = ConfigDict(extra="forbid")

    flow: str | None = Field(default=None, description="Default: the flow file beside it.")
    cases: list[TestCase] = Field(default_factory=list, description="The test cases.")


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """One call a step made to a fake adapter (every attempt is recorded)."""

    to: str
    step: str
    params: dict[str, Any]
    payload: Any
    attempt: int

    def as_expected(self, like: CallSpec | None) -> dict[str, Any]:
        """This call with the keys ``like`` compares, for the diff."""
        out: dict[str, Any] = {"to": self.to}
        if like is None or like.step is not None:
            out["step"] = self.step
        if like is None:
            out["params"] = self.params
        elif like.params is not None:
            # Only the keys the case gives: the rest are the action's defaults.
            out["params"] = {k: v for k, v in self.params.items() if k in like.params}
        out["payload"] = self.payload
        return out


@dataclass(slots=True)
class CaseResult:
    """What one case did, and whether that is what it expected."""

    name: str
    file: str = ""
    line: int = 0
    calls: list[RecordedCall] = field(default_factory=list)
    outcome: str = ""  # delivered | filtered | dead_lettered | discarded | error
    detail: str = ""
    problems: list[str] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    """What the processor logged while running the case (structlog event dicts)."""

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def to_dict(self) -> dict[str, Any]:
        """The case as ``platypus flows test --json`` prints it (docs/cli.md)."""
        return {
            "name": self.name,
            "file": self.file,
            "line": self.line,
            "passed": self.passed,
            "outcome": self.outcome,
            "detail": self.detail,
            "problems": list(self.problems),
            "calls": [
                {"to": c.to, "step": c.step, "params": c.params, "payload": c.payload}
                for c in self.calls
            ],
        }

    def report(self) -> str:
        """The case's name and, if it failed, why: readable text with a diff."""
        if self.passed:
            return f"PASS {self.where} {self.name}"
        lines = [f"FAIL {self.where} {self.name}"]
        for problem in self.problems:
            lines.extend("  " + line for line in problem.splitlines())
        return "\n".join(lines)


class RecordingAdapter(Adapter):
    """A stand-in for a connection's adapter: records calls, answers from the case.

    It has the real adapter's actions (so ``params`` and input models are
    checked as in production) and never touches the network.
    """

    name = "recording"

    def __init__(
        self,
        connection: str,
        actions: Mapping[str, Action],
        calls: list[RecordedCall],
        results: Mapping[str, Any],
        fail: Mapping[str, FailSpec],
    ) -> None:
        super().__init__(self.Settings(), connection=connection)
        self.actions = actions  # type: ignore[misc]  # per-instance: the real adapter's
        self._calls = calls
        self._results = results
        self._fail = fail
        self._failures: dict[str, int] = {}

    async def call(self, request: Request) -> Any:
        self._calls.append(
            RecordedCall(
                to=f"{self.connection}.{request.action}",
                step=request.step,
                params=dict(request.params),
                payload=copy.deepcopy(request.payload),
                attempt=request.attempt,
            )
        )
        fail = self._fail.get(request.step)
        if fail is not None:
            count = self._failures.get(request.step, 0)
            if fail.times is None or count < fail.times:
                self._failures[request.step] = count + 1
                error = _FAILURES[fail.error]
                raise error(fail.message, status_code=fail.status_code)
        return copy.deepcopy(self._results.get(request.step, {}))


_FAILURES: dict[str, type[PermanentError | RetryableError]] = {
    "RetryableError": RetryableError,
    "PermanentError": PermanentError,
    "MissingDependencyError": MissingDependencyError,
}


class _TestProcessor(Processor):
    """The processor with retry backoffs cut to nothing: tests never wait."""

    async def _backoff(self, seconds: float) -> None:
        return None


class FlowHarness:
    """Runs test cases of one flow through the runtime's processor, adapters faked.

    ::

        from platypus.testing import FlowHarness

        def test_small_deals_are_filtered() -> None:
            harness = FlowHarness("flows/big-deals.yaml")
            result = harness.run({
                "name": "small deal",
                "event_file": "../samples/big-deals.event.json",
                "patch": {"data": {"amount": 10}},
                "filtered": True,
            })
            assert result.passed, result.report()

    ``project`` is the folder holding ``platypus.yaml`` (default: the nearest one
    above the flow file); relative ``event_file`` paths resolve against ``base``
    (default: the flow's folder).
    """

    def __init__(
        self,
        flow: Path | str | FlowSpec,
        *,
        project: Path | str | None = None,
        base: Path | str | None = None,
        schemas: SchemaRegistry | None = None,
        adapters: AdapterRegistry | None = None,
        config: ProjectConfig | None = None,
    ) -> None:
        if isinstance(flow, FlowSpec):
            self.flow = flow
        else:
            self.flow = load_flow(Path(flow))
        source = Path(self.flow.source_file)
        root = Path(project) if project is not None else find_project_root(source.parent)
        self.config = config or load_config(root=root)
        self.base = Path(base) if base is not None else source.parent
        self.schemas = schemas or SchemaRegistry.default()
        self.adapters = adapters or AdapterRegistry.default()

    def run(self, case: TestCase | Mapping[str, Any]) -> CaseResult:
        """Run one case (a `TestCase` or its YAML form as a dict) and compare."""
        return asyncio.run(self.arun(case))

    async def arun(self, case: TestCase | Mapping[str, Any], *, line: int = 0) -> CaseResult:
        """`run`, for async tests."""
        if not isinstance(case, TestCase):
            case = TestCase.model_validate(dict(case))
        result = CaseResult(case.name, self.flow.source_file, line)
        try:
            event = self.event(case)
        except (OSError, ValueError) as exc:
            result.outcome = "error"
            result.problems.append(f"cannot read the event: {exc}")
            return result
        try:
            # The processor logs each outcome; keep those with the result, off the terminal.
            with structlog.testing.capture_logs() as logs:
                outcome = await self._process(case, event, result.calls)
            result.logs = [dict(entry) for entry in logs]
        except PlatypusError as exc:
            result.outcome = "error"
            result.problems.append(f"the flow cannot run: {exc}")
            return result
        result.outcome, result.detail = outcome.status, outcome.detail
        result.problems.extend(_compare(case, outcome, result.calls))
        return result

    def event(self, case: TestCase) -> dict[str, Any]:
        """The case's event: inline or from ``event_file``, with ``patch`` merged in."""
        if case.event is not None:
            event = copy.deepcopy(case.event)
        else:
            path = self.base / str(case.event_file)
            loaded = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(loaded, dict):
                raise ValueError(f"{path} does not hold a JSON object (a CloudEvent)")
            event = loaded
        merged: dict[str, Any] = _merge(event, case.patch)
        return merged

    async def _process(
        self, case: TestCase, event: dict[str, Any], calls: list[RecordedCall]
    ) -> FlowOutcome:
        fakes: dict[str, Adapter] = {}
        for step in self.flow.steps:
            if step.connection not in fakes:
                actions = self._actions(step.connection)
                fakes[step.connection] = RecordingAdapter(
                    step.connection, actions, calls, case.results, case.fail
                )
        connections = Connections(self.config, self.adapters, fakes)
        try:
            params = connections.prepare([self.flow])
        except ConfigurationError as exc:
            raise FlowError(str(exc)) from None
        processor = _TestProcessor(
            [self.flow],
            self.schemas,
            connections,
            retry=self.config.retry,
            concurrency=1,
            params=params,
            ledger=MemoryLedger(),
        )
        value = json.dumps(event).encode()
        # Keyed as the ingress would key it, so adapters see the same Request.key.
        source = Record("platypus.test", 0, 0, ordering_key(event, self.config.ordering), value)
        result = await processor.process(source)
        for outcome in result.outcomes:
            if outcome.flow in (self.flow.name, ""):
                return outcome
        return FlowOutcome(self.flow.name, "filtered", detail="the flow did not run")

    def _actions(self, connection: str) -> Mapping[str, Action]:
        """The real adapter's actions, so params and input are checked as in production."""
        spec = self.config.connection(connection)
        try:
            return self.adapters.get(spec.adapter).actions
        except ConfigurationError:
            # Unknown here; `platypus flows lint` reports it. Accept any action.
            names = {s.action for s in self.flow.steps if s.connection == connection}
            return {name: Action() for name in names}


def _merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = _merge(out.get(key), value)
        return out
    return copy.deepcopy(patch)


def _compare(case: TestCase, outcome: FlowOutcome, calls: list[RecordedCall]) -> list[str]:
    problems: list[str] = []
    expected_status = "delivered"
    if case.filtered:
        expected_status = "filtered"
    elif case.dead_lettered is not None:
        expected_status = "dead_lettered"
    elif case.discarded:
        expected_status = "discarded"
    if outcome.status != expected_status:
        detail = f" at step {outcome.step!r}" if outcome.step else ""
        why = f": {outcome.detail}" if outcome.detail else ""
        problems.append(
            f"expected the event to be {expected_status.replace('_', '-')}, "
            f"but it was {outcome.status.replace('_', '-')}{detail}{why}"
        )
    expected_calls = case.calls
    if expected_calls is None and case.filtered:
        expected_calls = []
    if expected_calls is not None:
        diff = _calls_diff(expected_calls, calls)
        if diff:
            problems.append("the adapter calls differ (- expected, + actual):\n" + diff)
    letter = case.dead_lettered
    if letter is not None and outcome.status in ("dead_lettered", "discarded"):
        if letter.step is not None and outcome.step != letter.step:
            problems.append(f"expected the failure at step {letter.step!r}, got {outcome.step!r}")
        error_class = ""
        if outcome.dead_letter is not None:
            error_class = outcome.dead_letter.header("__connect.errors.exception.class.name") or ""
        if letter.error is not None and error_class.rsplit(".", 1)[-1] != letter.error:
            problems.append(f"expected error {letter.error}, got {error_class or 'none'}")
        if letter.message_contains is not None and letter.message_contains not in outcome.detail:
            problems.append(
                f"expected the error message to contain {letter.message_contains!r}, "
                f"got {outcome.detail!r}"
            )
        if letter.attempts is not None and outcome.attempts != letter.attempts:
            problems.append(f"expected {letter.attempts} attempt(s), got {outcome.attempts}")
    return problems


def _calls_diff(expected: Sequence[CallSpec], actual: Sequence[RecordedCall]) -> str:
    """A unified diff of the expected and actual calls, as YAML; empty when equal."""
    want = [call.model_dump(exclude_none=True, exclude={"payload"}) for call in expected]
    for row, call in zip(want, expected, strict=True):
        row["payload"] = call.payload
    got = [
        call.as_expected(expected[index] if index < len(expected) else None)
        for index, call in enumerate(actual)
    ]
    if want == got:
        return ""
    lines = difflib.unified_diff(
        _yaml_lines(want), _yaml_lines(got), "expected", "actual", lineterm=""
    )
    return "\n".join(lines)


def _yaml_lines(value: Any) -> list[str]:
    text = yaml.safe_dump(_plain(value), sort_keys=False, allow_unicode=True, width=100)
    return text.splitlines()


def _plain(value: Any) -> Any:
    """JSON-like values only (a Decimal or date from a result becomes its JSON form)."""
    return json.loads(json.dumps(value, default=str))


# -- test files -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaseRead:
    """One case as read: the case, or the problems that keep it from running."""

    index: int
    name: str
    line: int
    case: TestCase | None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TestFileRead:
    """A test file as read: its cases (each valid or not) or why it cannot be used.

    A case with a mistake (an unknown key, a wrong type) is one failed case; the
    file's other cases still run. ``error`` is set only when the file as a whole
    cannot be used (not YAML, not a mapping, ``cases`` not a list).
    """

    __test__: ClassVar[bool] = False

    path: Path
    spec: FlowTestFile | None
    locations: Locations
    error: str = ""
    cases: tuple[CaseRead, ...] = ()

    def line_of(self, index: int) -> int:
        return self.locations.value(("cases", index)).line


_FILE_KEYS = list(FlowTestFile.model_fields)
_MODELS_AT: dict[str, type[BaseModel]] = {
    "calls": CallSpec,
    "fail": FailSpec,
    "dead_lettered": DeadLetteredSpec,
}


def read_test_file(path: Path) -> TestFileRead:
    """Parse and validate a ``*.test.yaml`` file, keeping the line of each case.

    Each case is validated on its own, so one misspelt key fails that case, at
    its file:line with a did-you-mean, and not the whole file.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return TestFileRead(path, None, Locations(str(path)), f"cannot read it: {exc}")
    parsed = parse_yaml(text, str(path))
    locations = parsed.locations
    if parsed.problems:
        first = parsed.problems[0].error
        return TestFileRead(path, None, locations, f"{first.location}: {first.message}")
    raw = parsed.value if parsed.value is not None else {}
    if not isinstance(raw, dict):
        return TestFileRead(
            path, None, locations, f"{locations.value(())}: a test file is a mapping with cases:"
        )
    problems = [
        f"{locations.key((key,))}: unknown key {key!r}{_did_you_mean(key, _FILE_KEYS)}"
        for key in raw
        if key not in _FILE_KEYS
    ]
    flow = raw.get("flow")
    if flow is not None and not isinstance(flow, str):
        problems.append(f"{locations.value(('flow',))}: flow: the flow's name, a string")
    raw_cases = raw.get("cases", [])
    if not isinstance(raw_cases, list):
        problems.append(f"{locations.value(('cases',))}: cases: a list of test cases")
    if problems:
        return TestFileRead(path, None, locations, "\n".join(problems))
    cases = tuple(_read_case(index, item, locations) for index, item in enumerate(raw_cases))
    valid = [read.case for read in cases if read.case is not None]
    spec = FlowTestFile(flow=flow, cases=valid)
    return TestFileRead(path, spec, locations, cases=cases)


def _read_case(index: int, raw: Any, locations: Locations) -> CaseRead:
    base: YamlPath = ("cases", index)
    line = locations.value(base).line
    name = str(raw.get("name", f"case {index + 1}")) if isinstance(raw, dict) else ""
    name = name or f"case {index + 1}"
    try:
        case = TestCase.model_validate(raw)
    except ValidationError as exc:
        messages = [_case_error(err, base, locations) for err in exc.errors(include_url=False)]
        return CaseRead(index, name, line, None, tuple(messages))
    return CaseRead(index, name, line, case)


def _case_error(err: ErrorDetails, base: YamlPath, locations: Locations) -> str:
    loc = tuple(err["loc"])
    path = (*base, *loc)
    label = ".".join(str(part) for part in path)
    if err["type"] == "extra_forbidden" and loc:
        key = str(loc[-1])
        options = _FIELDS_BY_PARENT.get(_parent_kind(loc), _CASE_KEYS)
        return f"{locations.key(path)}: {label}: unknown key {key!r}{_did_you_mean(key, options)}"
    return f"{locations.value(path)}: {label}: {err['msg']}"


def _parent_kind(loc: tuple[Any, ...]) -> str:
    """Which model the key at ``loc`` belongs to: the case, or one of its parts."""
    parents = [part for part in loc[:-1] if isinstance(part, str)]
    if not parents:
        return "case"
    head = parents[0]
    # fail: {step: {...}} has the step name between; calls: [ {...} ] an index.
    return head if head in _MODELS_AT else "case"


_CASE_KEYS = list(TestCase.model_fields)
_FIELDS_BY_PARENT: dict[str, list[str]] = {
    "case": _CASE_KEYS,
    **{name: list(model.model_fields) for name, model in _MODELS_AT.items()},
}


def _did_you_mean(name: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f" (the keys are: {', '.join(options)})" if options else ""


def test_files(path: Path) -> list[Path]:
    """The test files for ``path``: a test file, the one beside a flow, or all in a folder."""
    if path.is_dir():
        found = [
            p
            for p in path.rglob("*")
            if p.name.endswith(TEST_SUFFIXES)
            and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts[:-1])
        ]
        return sorted(found)
    if path.name.endswith(TEST_SUFFIXES):
        return [path]
    for suffix in TEST_SUFFIXES:
        candidate = path.with_name(_stem(path) + suffix)
        if candidate.exists():
            return [candidate]
    return []


test_files.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def flow_for_tests(test_file: Path, spec: FlowTestFile) -> Path:
    """The flow file a test file tests: named by ``flow:``, else the one beside it."""
    stem = test_file.name
    for suffix in TEST_SUFFIXES:
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    if spec.flow is None:
        for suffix in FLOW_SUFFIXES:
            candidate = test_file.with_name(stem + suffix)
            if candidate.exists():
                return candidate
        raise FlowError(f"{test_file}: no flow file {stem}.yaml beside it; name it with flow:")
    for candidate in sorted(test_file.parent.iterdir()):
        if candidate.name.endswith(TEST_SUFFIXES) or not candidate.name.endswith(FLOW_SUFFIXES):
            continue
        raw = yaml.safe_load(candidate.read_text(encoding="utf-8"))
        if isinstance(raw, dict) and raw.get("name") == spec.flow:
            return candidate
    raise FlowError(f"{test_file}: no flow named {spec.flow!r} in {test_file.parent}")


def _stem(path: Path) -> str:
    for suffix in FLOW_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.stem


def find_project_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` holding ``platypus.yaml`` (else ``start``)."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_FILE).exists():
            return folder
    return start


# Lint's findings that make a flow's test meaningless: where its steps write.
_TARGET_CODES = frozenset(
    {
        "unknown-connection",
        "unknown-adapter",
        "adapter-unavailable",
        "unknown-action",
        "connection-settings",
        "invalid-params",
        "unknown-event-type",
        # A SOQL bind the payload never maps fails the step on every event, so a
        # case that passes with fakes would say nothing about the real call.
        "bind-missing",
    }
)


async def run_test_file(
    path: Path,
    *,
    project: Path | None = None,
    schemas: SchemaRegistry | None = None,
    adapters: AdapterRegistry | None = None,
) -> list[CaseResult]:
    """Run every case of one test file; a file that cannot be used is one failed result.

    The flow's connections and actions are checked as ``platypus flows lint``
    checks them (one failed ``(flow)`` result); each case is checked against the
    flow (its steps) and the event's schema (``patch:`` fields) before it runs,
    and a case with a mistake fails alone while the others run.
    """
    read = read_test_file(path)
    if read.spec is None:
        return [CaseResult("(test file)", str(path), 1, problems=[read.error])]
    schemas = schemas or SchemaRegistry.default()
    adapters = adapters or AdapterRegistry.default()
    try:
        flow_path = flow_for_tests(path, read.spec)
        harness = FlowHarness(
            flow_path, project=project, base=path.parent, schemas=schemas, adapters=adapters
        )
    except (FlowLoadError, FlowError, ConfigurationError, OSError, yaml.YAMLError) as exc:
        return [CaseResult("(flow)", str(path), 1, problems=[f"the flow cannot be loaded:\n{exc}"])]
    results = []
    findings = _target_findings(flow_path, schemas, adapters, harness.config)
    if findings:
        results.append(CaseResult("(flow)", str(flow_path), 0, problems=findings))
    for entry in read.cases:
        if entry.case is None:
            results.append(
                CaseResult(entry.name, str(path), entry.line, problems=[*entry.problems])
            )
            continue
        mistakes = case_problems(
            entry.case, harness.flow, read.locations, ("cases", entry.index), schemas
        )
        if mistakes:
            results.append(CaseResult(entry.name, str(path), entry.line, problems=mistakes))
            continue
        result = await harness.arun(entry.case, line=entry.line)
        result.file = str(path)
        results.append(result)
    return results


def _target_findings(
    flow_path: Path, schemas: SchemaRegistry, adapters: AdapterRegistry, config: ProjectConfig
) -> list[str]:
    from platypus.flow.lint import lint_paths  # lint imports much; only the CLI path needs it

    findings = lint_paths([flow_path], schemas=schemas, adapters=adapters, config=config)
    return [
        f"{finding} (see `platypus flows lint`)"
        for finding in findings
        if finding.code in _TARGET_CODES and finding.severity == "error"
    ]


def case_problems(
    case: TestCase,
    flow: FlowSpec,
    locations: Locations,
    base: YamlPath,
    schemas: SchemaRegistry,
) -> list[str]:
    """What in ``case`` cannot match ``flow``: unknown steps, targets and patch fields.

    Each problem names the file:line of the key and, when a name is close, the
    one meant. ``base`` is the case's path in the test file, e.g. ``("cases", 2)``.
    """
    steps = [step.name for step in flow.steps]
    targets = sorted({step.to for step in flow.steps})
    problems: list[str] = []

    def unknown_step(name: str, path: YamlPath, *, key: bool) -> None:
        where = locations.key(path) if key else locations.value(path)
        label = ".".join(str(part) for part in path)
        problems.append(
            f"{where}: {label}: flow {flow.name!r} has no step {name!r}{_did_you_mean(name, steps)}"
        )

    for section, names in (("results", case.results), ("fail", case.fail)):
        for name in names:
            if name not in steps:
                unknown_step(name, (*base, section, name), key=True)
    for index, call in enumerate(case.calls or []):
        if call.step is not None and call.step not in steps:
            unknown_step(call.step, (*base, "calls", index, "step"), key=False)
        if call.to not in targets:
            path = (*base, "calls", index, "to")
            problems.append(
                f"{locations.value(path)}: {'.'.join(str(p) for p in path)}: no step of flow "
                f"{flow.name!r} writes to {call.to!r}{_did_you_mean(call.to, targets)}"
            )
    letter = case.dead_lettered
    if letter is not None and letter.step is not None and letter.step not in steps:
        unknown_step(letter.step, (*base, "dead_lettered", "step"), key=False)
    problems.extend(_patch_problems(case, flow, locations, base, schemas))
    return problems


# The CloudEvents attributes a patch may set besides data (extensions are free-form).
_ENVELOPE = (
    "id",
    "source",
    "type",
    "specversion",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
    "data",
)


def _patch_problems(
    case: TestCase,
    flow: FlowSpec,
    locations: Locations,
    base: YamlPath,
    schemas: SchemaRegistry,
) -> list[str]:
    problems: list[str] = []
    path: YamlPath = (*base, "patch")
    for key in case.patch:
        if key in _ENVELOPE:
            continue
        close = difflib.get_close_matches(key, _ENVELOPE, n=1, cutoff=0.6)
        if close or not key.isalnum() or key.lower() != key:
            hint = f"; did you mean {close[0]!r}?" if close else " and is no extension name"
            problems.append(
                f"{locations.key((*path, key))}: {_label((*path, key))}: {key!r} is no "
                f"CloudEvents attribute{hint}"
            )
    data = case.patch.get("data")
    if not isinstance(data, dict):
        return problems
    event_type = case.patch.get("type") or (case.event or {}).get("type")
    types = [event_type] if event_type in flow.consumes else list(flow.consumes)
    found: list[tuple[Mapping[str, Any], Mapping[str, Any]]] = []
    for name in types:
        try:
            loaded = dict(schemas.json_schema(str(name)))
        except PlatypusError:
            continue  # an unknown type: lint reports it
        found.append((loaded, loaded.get("$defs", {})))
    if not found:
        return problems
    by_path: dict[YamlPath, list[str]] = {}
    for schema, defs in found:
        for bad, message in _unknown_fields(data, schema, defs, (*path, "data"), "data"):
            by_path.setdefault(bad, []).append(message)
    for bad, messages in by_path.items():
        if len(messages) == len(found):  # a field no consumed type has
            problems.append(f"{locations.key(bad)}: {_label(bad)}: {messages[0]}")
    return problems


def _label(path: YamlPath) -> str:
    return ".".join(str(part) for part in path)


def _unknown_fields(
    value: Any,
    schema: Mapping[str, Any],
    defs: Mapping[str, Any],
    path: YamlPath,
    field_path: str,
) -> Iterator[tuple[YamlPath, str]]:
    if isinstance(value, list):
        items = _items(schema, defs)
        if items is not None:
            for index, item in enumerate(value):
                inner_path = f"{field_path}[{index}]"
                yield from _unknown_fields(item, items, defs, (*path, index), inner_path)
        return
    properties = _properties(schema, defs)
    if properties is None:
        return  # free-form here: anything goes
    if isinstance(value, dict):
        for key, item in value.items():
            inner = properties.get(key)
            if inner is None:
                yield (*path, key), _no_field(field_path, key, properties, defs)
            else:
                yield from _unknown_fields(item, inner, defs, (*path, key), f"{field_path}.{key}")


def _properties(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The fields an object schema has (over its anyOf options), or None if open."""
    schema = _resolve(schema, defs)
    options = [_resolve(o, defs) for o in (*schema.get("anyOf", ()), *schema.get("oneOf", ()))]
    objects = [o for o in (schema, *options) if "properties" in o]
    if not objects:
        return None
    merged: dict[str, Any] = {}
    for option in objects:
        merged.update(option["properties"])
    return merged


def _items(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The schema of a list's items (over anyOf options), if it is a list."""
    schema = _resolve(schema, defs)
    for option in (schema, *schema.get("anyOf", ())):
        option = _resolve(option, defs)
        if isinstance(option.get("items"), Mapping):
            items: Mapping[str, Any] = option["items"]
            return items
    return None


def _resolve(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = defs.get(ref.removeprefix("#/$defs/"))
        if isinstance(target, Mapping):
            return target
    return schema


def _no_field(
    field_path: str,
    key: str,
    properties: Mapping[str, Any],
    defs: Mapping[str, Any],
) -> str:
    message = f"{field_path} has no field {key!r}"
    close = difflib.get_close_matches(key, list(properties), n=1, cutoff=0.6)
    if close:
        return f"{message}; did you mean '{field_path}.{close[0]}'?"
    elsewhere = [p for p in _field_paths(properties, defs, field_path, 3) if p.endswith("." + key)]
    if elsewhere:
        return f"{message}; did you mean {elsewhere[0]!r}?"
    return f"{message} (it has: {', '.join(properties)})"


def _field_paths(
    properties: Mapping[str, Any], defs: Mapping[str, Any], prefix: str, depth: int
) -> Iterator[str]:
    for name, inner in properties.items():
        yield f"{prefix}.{name}"
        if depth <= 1:
            continue
        items = _items(inner, defs)
        label = f"{prefix}.{name}[0]" if items is not None else f"{prefix}.{name}"
        nested = _properties(items if items is not None else inner, defs)
        if nested:
            yield from _field_paths(nested, defs, label, depth - 1)


def summary(results: Sequence[CaseResult], files: int) -> str:
    """``3 passed, 1 failed in 2 files``."""
    passed = sum(1 for r in results if r.passed)
    failed = len(results) - passed
    parts = [f"{passed} passed"]
    if failed:
        parts.append(f"{failed} failed")
    return f"{', '.join(parts)} in {files} file{'' if files == 1 else 's'}"
