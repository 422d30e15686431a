"""The catalog's vendors on loopback, and the repository's platypus.yaml pointed at them.

Each fake is the one the adapter's own tests use (tests/fakes/), started once for
the package and emptied before each test. `catalog_config` reads the real
``platypus.yaml`` with its ``${ENV}`` variables and secrets set the way an
operator would, the fakes' URLs and the test CA included, and changes only a
short timeout.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from platypus.config import ConnectionSpec, ProjectConfig, load_config
from platypus.retry import RetryPolicy
from tests.fakes import slack as slack_fake
from tests.fakes.coupa import FakeCoupa
from tests.fakes.netsuite import Credentials, FakeNetSuite, wsdl_path
from tests.fakes.okta import FakeOkta
from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.slack import FakeSlack
from tests.fakes.zuora import FakeZuora

REPO = Path(__file__).resolve().parents[2]

SF_CONSUMER_KEY = "3MVG9-catalog-external-client-app"
SF_CONSUMER_SECRET = "catalog-sf-consumer-secret-41d2"
SF_RUN_AS = "integration@acme.test"
NETSUITE = Credentials(
    account="1234567_SB1",
    consumer_key="ck-catalog-3f1c",
    consumer_secret="netsuite-consumer-secret-catalog",
    token_id="tok-catalog-9ab2",
    token_secret="netsuite-token-secret-catalog",
)
# The channels the catalog's flows post to, as the workspace would have them.
CHANNELS = {
    "it-onboarding": "C0ITONBRD1",
    "it-offboarding": "C0ITOFFBD1",
    "security-alerts": "C0SECALRT1",
}


@dataclass
class Vendors:
    """The running fakes, one per catalog connection the flows use."""

    salesforce: FakeSalesforce
    zuora: FakeZuora
    netsuite: FakeNetSuite
    slack: FakeSlack
    okta: FakeOkta
    coupa: FakeCoupa


@pytest.fixture(scope="session")
def _servers() -> Iterator[Vendors]:
    if not wsdl_path().exists():
        pytest.skip(f"the NetSuite WSDL is not at {wsdl_path()}; set PLATYPUS_NETSUITE_WSDL")
    with FakeSalesforce() as salesforce, FakeNetSuite(NETSUITE) as netsuite:
        salesforce.add_client_credentials_app(SF_CONSUMER_KEY, SF_CONSUMER_SECRET, SF_RUN_AS)
        zuora, slack, okta, coupa = FakeZuora(), FakeSlack(), FakeOkta(), FakeCoupa()
        for fake in (zuora, slack, okta, coupa):
            fake.start()
        try:
            yield Vendors(salesforce, zuora, netsuite, slack, okta, coupa)
        finally:
            for fake in (zuora, slack, okta, coupa):
                fake.stop()


@pytest.fixture
def vendors(_servers: Vendors, monkeypatch: pytest.MonkeyPatch) -> Vendors:
    """Every fake, emptied, and the environment platypus.yaml reads, set for them."""
    _servers.salesforce.reset()
    _servers.zuora.reset()
    _servers.netsuite.reset()
    _servers.slack.reset()
    _servers.okta.reset()
    _servers.coupa.reset()
    for name, channel in CHANNELS.items():
        monkeypatch.setitem(slack_fake.CHANNELS, name, channel)
    environment = {
        "SALESFORCE_CONSUMER_KEY": SF_CONSUMER_KEY,
        "SALESFORCE_CONSUMER_SECRET": SF_CONSUMER_SECRET,
        "SALESFORCE_MY_DOMAIN": "acme.my",
        # Where the fakes listen; production derives these from the domain or account.
        "SALESFORCE_LOGIN_URL": _servers.salesforce.url,
        "SALESFORCE_CA_BUNDLE": str(_servers.salesforce.ca_path),
        "NETSUITE_ENDPOINT": _servers.netsuite.endpoint,
        "SLACK_BASE_URL": _servers.slack.url,
        "ZUORA_BASE_URL": _servers.zuora.url,
        "ZUORA_CLIENT_ID": FakeZuora.client_id,
        "ZUORA_CLIENT_SECRET": FakeZuora.client_secret,
        "NETSUITE_ACCOUNT": NETSUITE.account,
        "NETSUITE_CONSUMER_KEY": NETSUITE.consumer_key,
        "NETSUITE_CONSUMER_SECRET": NETSUITE.consumer_secret,
        "NETSUITE_TOKEN_ID": NETSUITE.token_id,
        "NETSUITE_TOKEN_SECRET": NETSUITE.token_secret,
        "NETSUITE_WSDL": str(wsdl_path()),
        "SLACK_BOT_TOKEN": FakeSlack.bot_token,
        "OKTA_ORG_URL": _servers.okta.url,
        "OKTA_CLIENT_ID": FakeOkta.client_id,
        "OKTA_PRIVATE_KEY": _servers.okta.private_key_pem,
        "OKTA_CA_BUNDLE": str(_servers.okta.ca_path),
        "COUPA_BASE_URL": _servers.coupa.url,
        "COUPA_CLIENT_ID": FakeCoupa.client_id,
        "COUPA_CLIENT_SECRET": FakeCoupa.client_secret,
        "COUPA_CA_BUNDLE": str(_servers.coupa.ca_path),
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return _servers


def catalog_config(vendors: Vendors, data_dir: Path) -> ProjectConfig:
    """The repository's platypus.yaml, read with the fakes' environment (`vendors`)."""
    config = load_config(root=REPO)
    # Where the fakes listen comes from the environment (`vendors`), as in production;
    # only what production never needs is set here.
    extra = {
        "salesforce": {},
        "netsuite": {},
        "slack": {},
        "zuora": {},
        "okta": {},
        # Coupa advises a few seconds between issuing a token and using it; the fake needs none.
        "coupa": {"token_warmup": 0},
    }
    connections = dict(config.connections)
    for name, settings in extra.items():
        spec = connections[name]
        connections[name] = ConnectionSpec(
            adapter=spec.adapter,
            settings={**spec.settings, **settings, "timeout": "5s"},
            max_concurrency=spec.max_concurrency,
            # The fake Slack has no per-channel limit; waiting 1 s a message only slows tests.
            rate_limit=None,
        )
    return config.model_copy(
        update={
            "connections": connections,
            "data_dir": data_dir,
            "partitions": 4,
            # dependency_wait in seconds, not the default 10 minutes: a test that expects
            # a missing supplier to be dead-lettered must not wait them out (flows that
            # set their own, such as invoice-to-netsuite's 30m, keep it).
            "retry": RetryPolicy(
                initial_delay=0.01, max_delay=0.05, max_attempts=4, dependency_wait=1.0
            ),
        }
    )
