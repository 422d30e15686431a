"""Secrets in adapter settings: named, never written in a flow or config file.

A setting that holds a credential is a `SecretRef`: the name of an environment
variable, or the path of a file (a mounted Kubernetes Secret, say), read when the
connection starts::

    connections:
      crm:
        adapter: salesforce
        settings:
          password: {env: SF_PASSWORD}
          private_key: {file: /run/secrets/sf-jwt.key}

The value is held as a pydantic `SecretStr`, so it shows as ``**********`` in
reprs, logs and error messages.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from platypus.exceptions import ConfigurationError

__all__ = ["SecretRef"]


class SecretRef(BaseModel):
    """Where a secret comes from: an environment variable or a file (exactly one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str | None = Field(default=None, description="Environment variable holding it.")
    file: Path | None = Field(
        default=None, description="File holding it (trailing newline ignored)."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give the secret as {env: NAME} or {file: PATH}, exactly one")
        return self

    def resolve(self, environ: dict[str, str] | None = None) -> SecretStr:
        """Read the secret; a missing one is a `ConfigurationError` naming where it looked."""
        if self.env is not None:
            value = (environ if environ is not None else os.environ).get(self.env)
            if not value:
                raise ConfigurationError(f"environment variable {self.env} is not set (a secret)")
            return SecretStr(value)
        assert self.file is not None
        try:
            return SecretStr(self.file.read_text(encoding="utf-8").rstrip("\n"))
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read secret file {self.file}: {exc.strerror}"
            ) from None

    def __str__(self) -> str:
        return f"env:{self.env}" if self.env is not None else f"file:{self.file}"
