"""The ``zuora`` adapter: customer accounts and subscriptions in Zuora Billing.

::

    connections:
      billing:
        adapter: zuora
        settings:
          base_url: https://rest.apisandbox.zuora.com
          client_id: {env: ZUORA_CLIENT_ID}
          client_secret: {env: ZUORA_CLIENT_SECRET}

Actions: ``create_account`` (``POST /v1/accounts``), ``create_subscription``
(a CreateSubscription order, ``POST /v1/orders``) and ``find_account`` (by CRM
id, ZOQL through ``POST /v1/action/query``). Writes carry ``Idempotency-Key``,
which Zuora honours for 24 hours. See ``docs/adapters/zuora.md``.
"""

from .adapter import ZuoraAdapter
from .models import (
    Contact,
    CreateAccountInput,
    CreateSubscriptionInput,
    FindAccountInput,
    InitialTerm,
    RatePlan,
    RenewalTerm,
    SubscriptionTerms,
    ZuoraSettings,
)

__all__ = [
    "Contact",
    "CreateAccountInput",
    "CreateSubscriptionInput",
    "FindAccountInput",
    "InitialTerm",
    "RatePlan",
    "RenewalTerm",
    "SubscriptionTerms",
    "ZuoraAdapter",
    "ZuoraSettings",
]
