"""Fakes and helpers for the poller tests: real loopback vendors, a real event log."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from platypus.adapter import Adapter
from platypus.config import IngressSettings
from platypus.ingress import Ingress
from platypus.records import EVENTS_TOPIC
from platypus.runtime.embedded.log import EventLog
from platypus.schema_registry import SchemaRegistry
from platypus_adapters.netsuite import NetSuiteAdapter
from platypus_adapters.salesforce import SalesforceAdapter
from platypus_adapters.workday import WorkdayAdapter
from tests.fakes.netsuite import Credentials, FakeNetSuite
from tests.fakes.netsuite import wsdl_path as netsuite_wsdl
from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.workday import FakeWorkday, WorkdaySchema
from tests.fakes.workday import wsdl_path as workday_wsdl

SF_USER, SF_PASSWORD, SF_TOKEN = "poller@acme.test", "sf-poller-pw-41", "sf-poller-token-9"
WD_PASSWORD = "wd-poller-secret-3"
NS = Credentials(
    account="1234567_SB1",
    consumer_key="ck-poller",
    consumer_secret="ns-poller-consumer-secret",
    token_id="tok-poller",
    token_secret="ns-poller-token-secret",
)

# -- a Salesforce fake that understands the pollers' SOQL -----------------------

_SELECT = re.compile(
    r"^SELECT (?P<fields>.+?) FROM (?P<sobject>\w+) WHERE (?P<where>.+?)"
    r" ORDER BY SystemModstamp, Id LIMIT (?P<limit>\d+)$",
    re.DOTALL,
)
_TOKEN = re.compile(
    r"\s*(?:(?P<dt>\d{4}-\d\d-\d\dT[\d:.]+Z)|(?P<str>'(?:[^'\\]|\\.)*')|(?P<op>>=|<=|!=|=|>|<)"
    r"|(?P<paren>[()])|(?P<word>[A-Za-z_][\w.]*)|(?P<num>-?\d+(?:\.\d+)?))"
)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _evaluate(where: str, record: dict[str, Any]) -> bool:
    """A tiny SOQL WHERE evaluator: comparisons, AND, OR, parentheses."""
    code: list[str] = []
    values: list[Any] = []
    pos = 0
    while pos < len(where):
        match = _TOKEN.match(where, pos)
        if match is None or match.end() == pos:
            if where[pos:].strip() == "":
                break
            raise ValueError(f"cannot read SOQL at {where[pos : pos + 20]!r}")
        pos = match.end()
        kind = match.lastgroup
        text = match.group(kind or "")
        if kind == "dt":
            values.append(_instant(text))
            code.append(f"v[{len(values) - 1}]")
        elif kind == "str":
            values.append(re.sub(r"\\(.)", r"\1", text[1:-1]))
            code.append(f"v[{len(values) - 1}]")
        elif kind == "num":
            values.append(float(text))
            code.append(f"v[{len(values) - 1}]")
        elif kind == "op":
            code.append({"=": "==", "!=": "!="}.get(text, text))
        elif kind == "paren":
            code.append(text)
        elif text.upper() in ("AND", "OR"):
            code.append(text.lower())
        else:
            value = record.get(text)
            if text == "SystemModstamp" and isinstance(value, str):
                value = datetime.fromisoformat(value)
            values.append(value)
            code.append(f"v[{len(values) - 1}]")
    return bool(eval(" ".join(code), {"__builtins__": {}}, {"v": values}))  # noqa: S307 -- test fake


class SoqlSalesforce(FakeSalesforce):
    """The fake Salesforce, answering the keyset queries of the Salesforce poller."""

    def put(self, record_id: str, modstamp: datetime, **fields: Any) -> None:
        """Store (or replace) an Opportunity with this SystemModstamp."""
        stamp = modstamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
        with self._lock:
            table = self._state.records.setdefault("Opportunity", {})
            table[record_id] = {**fields, "Id": record_id, "SystemModstamp": stamp}

    def _query(self, soql: str) -> tuple[int, Any]:
        match = _SELECT.match(soql.strip())
        if match is None:
            return super()._query(soql)
        names = [f.strip() for f in match.group("fields").split(",")]
        sobject = match.group("sobject")
        rows = [
            r
            for r in self._state.records.get(sobject, {}).values()
            if _evaluate(match.group("where"), r)
        ]
        rows.sort(key=lambda r: (datetime.fromisoformat(r["SystemModstamp"]), r["Id"]))
        rows = rows[: int(match.group("limit"))]
        records = []
        for r in rows:
            out: dict[str, Any] = {"attributes": {"type": sobject}}
            for name in names:
                parent, _, child = name.partition(".")
                if child:
                    out.setdefault(parent, {"attributes": {}})[child] = r.get(name)
                else:
                    out[name] = r.get(name)
            records.append(out)
        return 200, {"totalSize": len(records), "done": True, "records": records}


@pytest.fixture(scope="session")
def _salesforce_server() -> Iterator[SoqlSalesforce]:
    with SoqlSalesforce() as server:
        server.add_user(SF_USER, SF_PASSWORD, SF_TOKEN)
        yield server


@pytest.fixture
def salesforce(
    _salesforce_server: SoqlSalesforce, monkeypatch: pytest.MonkeyPatch
) -> SoqlSalesforce:
    monkeypatch.setenv("POLL_SF_PASSWORD", SF_PASSWORD)
    monkeypatch.setenv("POLL_SF_TOKEN", SF_TOKEN)
    _salesforce_server.reset()
    return _salesforce_server


def salesforce_settings(fake: FakeSalesforce, **extra: Any) -> dict[str, Any]:
    return {
        "auth": {
            "type": "password",
            "username": SF_USER,
            "password": {"env": "POLL_SF_PASSWORD"},
            "security_token": {"env": "POLL_SF_TOKEN"},
        },
        "login_url": fake.url,
        "ca_bundle": str(fake.ca_path),
        "timeout": 2,
        **extra,
    }


@pytest.fixture
async def sf_adapter(salesforce: SoqlSalesforce) -> AsyncIterator[Adapter]:
    adapter = SalesforceAdapter.from_config(salesforce_settings(salesforce), connection="crm")
    await adapter.start()
    yield adapter
    await adapter.close()


# -- NetSuite and Workday --------------------------------------------------------


@pytest.fixture(scope="session")
def _netsuite_server() -> Iterator[FakeNetSuite]:
    with FakeNetSuite(NS) as fake:
        yield fake


@pytest.fixture
def netsuite(_netsuite_server: FakeNetSuite, monkeypatch: pytest.MonkeyPatch) -> FakeNetSuite:
    monkeypatch.setenv("POLL_NS_CONSUMER_SECRET", NS.consumer_secret)
    monkeypatch.setenv("POLL_NS_TOKEN_SECRET", NS.token_secret)
    _netsuite_server.reset()
    return _netsuite_server


def netsuite_settings(fake: FakeNetSuite) -> dict[str, Any]:
    return {
        "account": NS.account,
        "consumer_key": NS.consumer_key,
        "consumer_secret": {"env": "POLL_NS_CONSUMER_SECRET"},
        "token_id": NS.token_id,
        "token_secret": {"env": "POLL_NS_TOKEN_SECRET"},
        "wsdl": str(netsuite_wsdl()),
        "endpoint": fake.endpoint,
        "timeout": 2,
    }


@pytest.fixture
async def ns_adapter(netsuite: FakeNetSuite) -> AsyncIterator[Adapter]:
    adapter = NetSuiteAdapter.from_config(netsuite_settings(netsuite), connection="erp")
    await adapter.start()
    yield adapter
    await adapter.close()


@pytest.fixture(scope="session")
def _workday_server() -> Iterator[FakeWorkday]:
    if not workday_wsdl().exists():
        pytest.skip(f"the Workday WSDL is not at {workday_wsdl()}")
    fake = FakeWorkday(WorkdaySchema(workday_wsdl()), password=WD_PASSWORD)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def workday(_workday_server: FakeWorkday, monkeypatch: pytest.MonkeyPatch) -> FakeWorkday:
    monkeypatch.setenv("POLL_WD_PASSWORD", WD_PASSWORD)
    _workday_server.reset(password=WD_PASSWORD)
    return _workday_server


@pytest.fixture
async def wd_adapter(workday: FakeWorkday) -> AsyncIterator[Adapter]:
    adapter = WorkdayAdapter.from_config(
        {
            "tenant": "acme",
            "username": "isu_platypus",
            "password": {"env": "POLL_WD_PASSWORD"},
            "wsdl": str(workday_wsdl()),
            "endpoint": workday.endpoint,
            "timeout": 2,
        },
        connection="hr",
    )
    await adapter.start()
    yield adapter
    await adapter.close()


# -- the log ---------------------------------------------------------------------


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EventLog]:
    with EventLog(tmp_path / "data", durability="normal") as opened:
        yield opened


@pytest.fixture
def ingress(log: EventLog) -> Ingress:
    return Ingress(log, SchemaRegistry.default(), IngressSettings(), EVENTS_TOPIC)
