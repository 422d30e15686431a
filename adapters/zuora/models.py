"""Settings of a ``zuora`` connection and the typed inputs of its actions.

Input fields are written in Zuora's own camelCase names (``billToContact``,
``crmId``), as in Zuora's API reference, so a flow's payload reads like the
request it becomes.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from platypus.retry import Duration
from platypus.secrets import SecretRef

__all__ = [
    "Contact",
    "CreateAccountInput",
    "CreateAccountResult",
    "CreateSubscriptionInput",
    "CreateSubscriptionResult",
    "FindAccountInput",
    "FindAccountResult",
    "InitialTerm",
    "RatePlan",
    "RenewalTerm",
    "SubscriptionTerms",
    "ZuoraSettings",
]

PRODUCTION_URL = "https://rest.zuora.com"
SANDBOX_URL = "https://rest.apisandbox.zuora.com"


def _unset_if_empty(value: object) -> object:
    # platypus.yaml reads settings from the environment: ${NAME:-} is "" when unset.
    return None if value == "" else value


class ZuoraSettings(BaseModel):
    """Settings of a ``zuora`` connection: an OAuth client of one Zuora tenant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(
        default=PRODUCTION_URL,
        description=(
            "REST endpoint of the tenant: https://rest.zuora.com (US production), "
            "https://rest.apisandbox.zuora.com (US API sandbox), or your data centre's."
        ),
    )
    client_id: SecretRef = Field(
        description="Client ID of the Zuora OAuth client, as {env: NAME} or {file: PATH}."
    )
    client_secret: SecretRef = Field(
        description="Client secret of the Zuora OAuth client, as {env: NAME} or {file: PATH}."
    )
    timeout: Duration = Field(
        default=30.0,
        description="Connect, read and write timeout of one HTTP request (orders can be slow).",
    )
    token_refresh_margin: Duration = Field(
        default=60.0,
        description="Fetch a new OAuth token this long before the cached one expires.",
    )
    zuora_version: str | None = Field(
        default=None,
        description="Value of the Zuora-Version header (e.g. 2023-09-06); null: the tenant's.",
    )
    entity_ids: str | None = Field(
        default=None, description="Value of the Zuora-Entity-Ids header (multi-entity tenants)."
    )
    max_connections: int = Field(
        default=20, ge=1, description="Most connections open to Zuora at once."
    )

    ca_bundle: Path | None = Field(
        default=None,
        description=(
            "CA certificates (PEM) that verify Zuora's TLS certificate instead of the "
            "system's (the CA of a TLS-inspecting proxy, say)."
        ),
    )
    proxy: str | None = Field(
        default=None,
        description=(
            "HTTP(S) proxy for every call, e.g. http://proxy.internal:3128; null: "
            "HTTPS_PROXY and HTTP_PROXY from the environment."
        ),
    )

    _empty_is_unset = field_validator("ca_bundle", "proxy", mode="before")(_unset_if_empty)

    @field_validator("proxy")
    @classmethod
    def _check_proxy(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = httpx.URL(value)
        if url.scheme not in {"http", "https"} or not url.host:
            raise ValueError("must be an http:// or https:// proxy URL, e.g. http://proxy:3128")
        return value

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"not a valid URL: {exc}") from None
        if url.scheme not in {"http", "https"} or not url.host:
            raise ValueError("must be an absolute https:// URL such as https://rest.zuora.com")
        return value.rstrip("/")


class _Wire(BaseModel):
    """A part of a request body: camelCase on the wire, unknown keys refused."""

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True
    )

    def wire(self) -> dict[str, Any]:
        """The JSON body part Zuora expects: camelCase names, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _custom_fields(value: dict[str, Any]) -> dict[str, Any]:
    wrong = sorted(name for name in value if not name.endswith("__c"))
    if wrong:
        raise ValueError(f"custom field names end in __c, as Zuora names them: {', '.join(wrong)}")
    return value


class Contact(_Wire):
    """A bill-to or sold-to contact of an account."""

    first_name: str = Field(min_length=1, max_length=100, description="First name.")
    last_name: str = Field(min_length=1, max_length=100, description="Last name.")
    work_email: str | None = Field(default=None, max_length=80, description="Work e-mail.")
    personal_email: str | None = Field(default=None, max_length=80)
    work_phone: str | None = Field(default=None, max_length=40)
    address1: str | None = Field(default=None, max_length=255)
    address2: str | None = Field(default=None, max_length=255)
    city: str | None = Field(default=None, max_length=40)
    state: str | None = Field(default=None, max_length=50)
    zip_code: str | None = Field(default=None, max_length=20)
    country: str | None = Field(
        default=None, description="Country name or ISO code; required for tax in most tenants."
    )


class CreateAccountInput(_Wire):
    """Input of ``create_account``: the body of ``POST /v1/accounts``."""

    name: str = Field(min_length=1, max_length=255, description="Account name.")
    currency: str = Field(
        min_length=3, max_length=3, description="ISO 4217 code, enabled in the tenant."
    )
    bill_to_contact: Contact = Field(description="Who receives the invoices.")
    sold_to_contact: Contact | None = Field(default=None, description="Defaults to billToContact.")
    bill_cycle_day: int = Field(
        ge=0, le=31, description="Day of the month invoices are made; 0: set by the first charge."
    )
    crm_id: str | None = Field(
        default=None, max_length=100, description="ID of the account in the CRM (Salesforce...)."
    )
    account_number: str | None = Field(
        default=None, max_length=70, description="Account number; null: Zuora assigns one."
    )
    auto_pay: bool | None = Field(default=None, description="Charge the default payment method.")
    payment_term: str | None = Field(default=None, description="E.g. 'Net 30'.")
    batch: str | None = Field(default=None, description="Billing batch, e.g. Batch1.")
    invoice_template_id: str | None = None
    communication_profile_id: str | None = None
    invoice_delivery_prefs_email: bool | None = None
    invoice_delivery_prefs_print: bool | None = None
    notes: str | None = Field(default=None, max_length=65535)
    custom_fields: dict[str, Any] = Field(
        default_factory=dict,
        description="Custom fields of the account, by their API names (ending in __c).",
    )

    _check_custom = field_validator("custom_fields")(_custom_fields)

    def wire(self) -> dict[str, Any]:
        body = super().wire()
        body.update(body.pop("customFields", {}))  # Zuora takes them beside standard fields
        return body


class InitialTerm(_Wire):
    """The first term of a subscription."""

    term_type: Literal["TERMED", "EVERGREEN"] = Field(description="TERMED or EVERGREEN.")
    period: int | None = Field(default=None, ge=1, description="Length of a TERMED term.")
    period_type: Literal["Month", "Year", "Day", "Week"] | None = Field(
        default=None, description="Unit of period."
    )
    start_date: dt.date | None = Field(
        default=None, description="Term start; default: the order's."
    )


class RenewalTerm(_Wire):
    """One renewal term of a TERMED subscription."""

    period: int = Field(ge=1)
    period_type: Literal["Month", "Year", "Day", "Week"]


class SubscriptionTerms(_Wire):
    """The ``terms`` object of a CreateSubscription order action."""

    initial_term: InitialTerm
    renewal_setting: Literal["RENEW_WITH_SPECIFIC_TERM", "RENEW_TO_EVERGREEN"] | None = None
    renewal_terms: list[RenewalTerm] | None = None
    auto_renew: bool | None = None


class RatePlan(_Wire):
    """A product rate plan the subscription subscribes to."""

    product_rate_plan_id: str = Field(min_length=1, description="ID of the product rate plan.")


class CreateSubscriptionInput(_Wire):
    """Input of ``create_subscription``: one CreateSubscription order for an existing account.

    Becomes ``POST /v1/orders`` with ``existingAccountNumber``, ``orderDate`` and one
    subscription whose only order action is ``CreateSubscription``.
    """

    account_number: str = Field(
        min_length=1, description="Number of the existing account (existingAccountNumber)."
    )
    order_date: dt.date = Field(description="Date of the order (YYYY-MM-DD).")
    terms: SubscriptionTerms = Field(description="Initial and renewal terms.")
    rate_plans: list[RatePlan] = Field(
        min_length=1, description="Product rate plans to subscribe to (subscribeToRatePlans)."
    )
    contract_effective_date: dt.date | None = Field(
        default=None, description="ContractEffective trigger date; default: the tenant's rule."
    )
    service_activation_date: dt.date | None = Field(default=None)
    customer_acceptance_date: dt.date | None = Field(default=None)
    subscription_number: str | None = Field(
        default=None, description="Subscription number; null: Zuora assigns one."
    )
    order_number: str | None = Field(default=None, description="Order number; null: Zuora's.")
    description: str | None = Field(default=None, max_length=500)
    run_billing: bool = Field(default=False, description="Bill the new subscription at once.")
    collect_payment: bool = Field(default=False, description="Collect payment at once.")

    def wire(self) -> dict[str, Any]:
        triggers = [
            {"name": name, "triggerDate": value.isoformat()}
            for name, value in (
                ("ContractEffective", self.contract_effective_date),
                ("ServiceActivation", self.service_activation_date),
                ("CustomerAcceptance", self.customer_acceptance_date),
            )
            if value is not None
        ]
        action: dict[str, Any] = {
            "type": "CreateSubscription",
            "createSubscription": {
                "terms": self.terms.wire(),
                "subscribeToRatePlans": [plan.wire() for plan in self.rate_plans],
            },
        }
        if triggers:
            action["triggerDates"] = triggers
        subscription: dict[str, Any] = {"orderActions": [action]}
        if self.subscription_number is not None:
            subscription["subscriptionNumber"] = self.subscription_number
        body: dict[str, Any] = {
            "existingAccountNumber": self.account_number,
            "orderDate": self.order_date.isoformat(),
            "subscriptions": [subscription],
            "processingOptions": {
                "runBilling": self.run_billing,
                "collectPayment": self.collect_payment,
            },
        }
        if self.order_number is not None:
            body["orderNumber"] = self.order_number
        if self.description is not None:
            body["description"] = self.description
        return body


class FindAccountInput(_Wire):
    """Input of ``find_account``: the CRM id to look the account up by."""

    crm_id: str = Field(min_length=1, max_length=100, description="The account's crmId.")


# -- results: what each action returns, in Zuora's own (camelCase) names ----------


class CreateAccountResult(BaseModel):
    """What ``create_account`` returns: the ids Zuora assigned."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    accountId: str | None = None  # noqa: N815 -- Zuora's name
    accountNumber: str | None = None  # noqa: N815
    billToContactId: str | None = None  # noqa: N815
    soldToContactId: str | None = None  # noqa: N815


class CreateSubscriptionResult(BaseModel):
    """What ``create_subscription`` returns: the order and its subscriptions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    orderNumber: str | None = None  # noqa: N815
    accountNumber: str | None = None  # noqa: N815
    status: str | None = None
    subscriptionNumbers: list[str] = Field(default_factory=list)  # noqa: N815


class FindAccountResult(BaseModel):
    """What ``find_account`` returns: whether an account has the CRM id, and its ids."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    found: bool
    accountId: str | None = None  # noqa: N815
    accountNumber: str | None = None  # noqa: N815
