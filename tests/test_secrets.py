"""`SecretRef`: secrets from the environment or a file, never shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from platypus.exceptions import ConfigurationError
from platypus.secrets import SecretRef


def test_a_secret_is_read_from_the_environment() -> None:
    secret = SecretRef(env="TOKEN").resolve({"TOKEN": "s3cr3t"})
    assert secret.get_secret_value() == "s3cr3t"
    assert "s3cr3t" not in repr(secret)


def test_a_secret_is_read_from_a_file_without_its_trailing_newline(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("from-file\n")
    assert SecretRef(file=tmp_path / "key").resolve().get_secret_value() == "from-file"


def test_a_missing_variable_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="environment variable NOPE is not set"):
        SecretRef(env="NOPE").resolve({})


def test_a_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read secret file"):
        SecretRef(file=tmp_path / "absent").resolve()


@pytest.mark.parametrize("given", [{}, {"env": "A", "file": "/x"}])
def test_exactly_one_source_is_required(given: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        SecretRef.model_validate(given)
