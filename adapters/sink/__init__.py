"""The ``sink`` adapter: accepts every delivery in process and keeps nothing but counts.

For benchmarks (delivery cost without a network) and for flows whose only job
is to prove events pass through. ``send`` returns ``{"accepted": n}``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from platypus.adapter import Action, Adapter, Request

__all__ = ["SinkAdapter"]


class SinkAdapter(Adapter):
    """Accepts every payload; counts deliveries per step."""

    name = "sink"
    # Nothing is kept, so a repeated delivery changes nothing: idempotent.
    actions: ClassVar = {
        "send": Action(description="Accept the payload and drop it.", idempotent=True)
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delivered = 0

    async def call(self, request: Request) -> Any:
        self.check_request(request)
        self.delivered += 1
        return {"accepted": self.delivered}
