"""The catalog's platypus.yaml: every endpoint and CA from the environment, auth that lasts."""

from __future__ import annotations

import pytest

from platypus.config import load_config
from platypus_adapters.coupa import CoupaSettings
from platypus_adapters.netsuite import NetSuiteSettings
from platypus_adapters.okta import OktaSettings
from platypus_adapters.salesforce import ClientCredentialsAuth, SalesforceSettings
from platypus_adapters.slack import SlackSettings
from platypus_adapters.workday import WorkdaySettings
from platypus_adapters.zuora import ZuoraSettings
from tests.catalog.conftest import REPO

ENVIRONMENT = {
    "SALESFORCE_CONSUMER_KEY": "3MVG9-key",
    "SALESFORCE_MY_DOMAIN": "acme.my",
    "SALESFORCE_LOGIN_URL": "https://sf-proxy.internal:8443",
    "SALESFORCE_CA_BUNDLE": "/etc/platypus/sf-ca.pem",
    "NETSUITE_ACCOUNT": "1234567_SB1",
    "NETSUITE_CONSUMER_KEY": "ck",
    "NETSUITE_TOKEN_ID": "tok",
    "NETSUITE_ENDPOINT": "https://ns-proxy.internal/services/NetSuitePort_2023_2",
    "NETSUITE_CA_BUNDLE": "/etc/platypus/ns-ca.pem",
    "NETSUITE_TIMEZONE": "Pacific/Honolulu",
    "ZUORA_CA_BUNDLE": "/etc/platypus/zuora-ca.pem",
    "SLACK_BASE_URL": "https://slack-proxy.internal/api",
    "SLACK_CA_BUNDLE": "/etc/platypus/slack-ca.pem",
    "WORKDAY_TENANT": "acme",
    "WORKDAY_WSDL": "/etc/platypus/Human_Resources-v30.wsdl",
    "WORKDAY_ENDPOINT": "https://wd-proxy.internal/ccx/service/acme/Human_Resources/v30.0",
    "WORKDAY_CA_BUNDLE": "/etc/platypus/wd-ca.pem",
    "OKTA_CLIENT_ID": "0oa-platypus",
    "OKTA_CA_BUNDLE": "/etc/platypus/okta-ca.pem",
    "COUPA_CA_BUNDLE": "/etc/platypus/coupa-ca.pem",
}


def settings(name: str, model: type) -> object:
    return model.model_validate(load_config(root=REPO).connections[name].settings)


def test_endpoints_and_ca_bundles_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    salesforce = settings("salesforce", SalesforceSettings)
    netsuite = settings("netsuite", NetSuiteSettings)
    zuora = settings("zuora", ZuoraSettings)
    slack = settings("slack", SlackSettings)
    assert isinstance(salesforce, SalesforceSettings)
    assert salesforce.login_url == "https://sf-proxy.internal:8443"
    assert str(salesforce.ca_bundle) == "/etc/platypus/sf-ca.pem"
    assert isinstance(netsuite, NetSuiteSettings)
    assert netsuite.service_url == ENVIRONMENT["NETSUITE_ENDPOINT"]
    assert str(netsuite.ca_bundle) == "/etc/platypus/ns-ca.pem"
    assert netsuite.timezone == "Pacific/Honolulu"
    assert isinstance(zuora, ZuoraSettings)
    assert str(zuora.ca_bundle) == "/etc/platypus/zuora-ca.pem"
    assert isinstance(slack, SlackSettings)
    assert slack.base_url == "https://slack-proxy.internal/api"
    assert str(slack.ca_bundle) == "/etc/platypus/slack-ca.pem"
    workday = settings("workday", WorkdaySettings)
    assert isinstance(workday, WorkdaySettings)
    assert workday.service_url == ENVIRONMENT["WORKDAY_ENDPOINT"]
    assert str(workday.ca_bundle) == "/etc/platypus/wd-ca.pem"
    okta = settings("okta", OktaSettings)
    assert isinstance(okta, OktaSettings)
    assert str(okta.ca_bundle) == "/etc/platypus/okta-ca.pem"
    coupa = settings("coupa", CoupaSettings)
    assert isinstance(coupa, CoupaSettings)
    assert str(coupa.ca_bundle) == "/etc/platypus/coupa-ca.pem"


def test_left_unset_they_are_the_vendors_own(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENVIRONMENT.items():
        if not name.endswith(("_LOGIN_URL", "_CA_BUNDLE", "_ENDPOINT", "_TIMEZONE", "_BASE_URL")):
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)
    salesforce = settings("salesforce", SalesforceSettings)
    netsuite = settings("netsuite", NetSuiteSettings)
    assert isinstance(salesforce, SalesforceSettings)
    assert (salesforce.login_url, salesforce.ca_bundle) == (None, None)
    assert isinstance(netsuite, NetSuiteSettings)
    assert (
        netsuite.service_url
        == "https://1234567-sb1.suitetalk.api.netsuite.com/services/NetSuitePort_2023_2"
    )
    assert netsuite.ca_bundle is None
    workday = settings("workday", WorkdaySettings)
    assert isinstance(workday, WorkdaySettings)
    assert (workday.endpoint, workday.ca_bundle) == (None, None)
    assert workday.service_url.startswith("https://wd2-impl-services1.workday.com/")


def test_salesforce_authenticates_with_a_flow_that_outlives_soap_login(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    salesforce = settings("salesforce", SalesforceSettings)
    assert isinstance(salesforce, SalesforceSettings)
    assert isinstance(salesforce.auth, ClientCredentialsAuth)
    assert float(salesforce.api_version) >= 65.0  # where password auth no longer exists
