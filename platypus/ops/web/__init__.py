"""The operations dashboard: failed events, replay and discard, the audit trail.

Served by the ingress process at ``/ops`` (see docs/operations.md)::

    auth = Authenticator(config.ops, store)
    app = create_dashboard(Operations(store, schemas), auth)   # Mount("/ops", app)
"""

from platypus.ops.web.app import Dashboard, create_dashboard

__all__ = ["Dashboard", "create_dashboard"]
