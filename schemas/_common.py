"""Field types shared by the built-in schemas."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import Field, StringConstraints

CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Money = Annotated[Decimal, Field(max_digits=18, decimal_places=4)]
NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=255)]
