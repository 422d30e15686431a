"""Project configuration: environment expansion, defaults, paths, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from platypus.config import ConnectionSpec, ProjectConfig, expand_env, load_config
from platypus.exceptions import ConfigurationError
from platypus.retry import RetryPolicy

# -- ${VAR} expansion ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${HOST}", {"HOST": "h"}, "h"),
        ("http://${HOST}:${PORT}/x", {"HOST": "h", "PORT": "80"}, "http://h:80/x"),
        ("${HOST:-localhost}", {}, "localhost"),
        ("${HOST:-localhost}", {"HOST": "h"}, "h"),
        ("${HOST:-}", {}, ""),
        ("${HOST:-a:b/c}", {}, "a:b/c"),
        ("${EMPTY}", {"EMPTY": ""}, ""),
        ("${EMPTY:-fallback}", {"EMPTY": ""}, "fallback"),
        ("no variables", {}, "no variables"),
        ("$HOST and {HOST}", {}, "$HOST and {HOST}"),
        ("${1BAD}", {}, "${1BAD}"),
    ],
)
def test_expand_env_replaces_variables_and_defaults(
    text: str, env: dict[str, str], expected: str
) -> None:
    assert expand_env(text, env) == expected


def test_expand_env_recurses_into_dicts_and_lists_and_keeps_other_values() -> None:
    value = {"a": ["${X}", 1, None, True], "b": {"c": "${Y:-d}"}, "${X}": 2.5}
    assert expand_env(value, {"X": "x"}) == {
        "a": ["x", 1, None, True],
        "b": {"c": "d"},
        "${X}": 2.5,
    }


def test_expand_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATYPUS_TEST_VAR", "from-env")
    assert expand_env("${PLATYPUS_TEST_VAR}") == "from-env"


def test_missing_variable_without_default_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match=r"environment variable BILLING_TOKEN is not set"):
        expand_env({"auth": ["${BILLING_TOKEN}"]}, {})


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="$"), max_size=30))
def test_text_without_a_dollar_is_unchanged(text: str) -> None:
    assert expand_env(text, {}) == text


@settings(max_examples=200, deadline=None)
@given(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True),
    st.text(alphabet=st.characters(blacklist_characters="}"), min_size=1, max_size=20),
)
def test_a_set_variable_wins_over_its_default(name: str, value: str) -> None:
    assert expand_env(f"<${{{name}:-dflt}}>", {name: value}) == f"<{value}>"


# -- loading ---------------------------------------------------------------------------


def test_no_file_gives_the_defaults_rooted_at_the_folder(tmp_path: Path) -> None:
    config = load_config(root=tmp_path)
    assert config == ProjectConfig(root=tmp_path)
    assert config.flows == Path("flows")
    assert config.partitions == 8
    assert config.concurrency == 16
    assert config.retry == RetryPolicy()
    assert config.connections == {}


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    (tmp_path / "platypus.yaml").write_text("")
    assert load_config(root=tmp_path) == ProjectConfig(root=tmp_path)


def write(folder: Path, text: str) -> Path:
    path = folder / "platypus.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_values_are_read_and_env_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATYPUS_TEST_URL", "http://billing")
    write(
        tmp_path,
        "partitions: 4\n"
        "retry: {max_attempts: 3, initial_delay: 250ms}\n"
        "ingress: {port: 0}\n"
        "connections:\n"
        "  billing:\n"
        "    adapter: http\n"
        "    settings: {base_url: '${PLATYPUS_TEST_URL}', timeout: 5}\n",
    )
    config = load_config(root=tmp_path)
    assert config.partitions == 4
    assert (config.retry.max_attempts, config.retry.initial_delay) == (3, 0.25)
    assert config.ingress.port == 0
    assert config.connection("billing") == ConnectionSpec(
        adapter="http", settings={"base_url": "http://billing", "timeout": 5}
    )


def test_relative_paths_resolve_against_the_file_s_folder(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    path = write(project, "flows: my-flows\ndata_dir: /var/lib/platypus\n")
    config = load_config(path)
    assert config.root == project
    assert config.resolve(config.flows) == project / "my-flows"
    assert config.resolve(config.data_dir) == Path("/var/lib/platypus")


def test_an_explicit_path_that_does_not_exist_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"cannot read .*nope\.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "partitions: [1\n")
    with pytest.raises(ConfigurationError, match="not valid YAML") as caught:
        load_config(path)
    assert str(path) in str(caught.value)


def test_a_top_level_list_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "- a\n- b\n")
    with pytest.raises(ConfigurationError, match="expected a mapping at the top level"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("partition: 4\n", "partition"),
        ("retry: {attempts: 3}\n", "retry.attempts"),
        ("connections: {billing: {adapter: http, setting: {}}}\n", "connections.billing.setting"),
        ("partitions: 0\n", "partitions"),
        ("ingress: {port: 70000}\n", "ingress.port"),
    ],
)
def test_unknown_keys_and_bad_values_name_the_file_and_the_key(
    tmp_path: Path, text: str, where: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigurationError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: {where}: ")


def test_a_missing_variable_in_the_file_is_a_configuration_error(tmp_path: Path) -> None:
    path = write(tmp_path, "connections: {b: {adapter: '${PLATYPUS_SURELY_UNSET_VAR}'}}\n")
    with pytest.raises(ConfigurationError, match="PLATYPUS_SURELY_UNSET_VAR"):
        load_config(path)


def test_unconfigured_connection_is_the_adapter_of_that_name() -> None:
    assert ProjectConfig().connection("sink") == ConnectionSpec(adapter="sink")


def test_root_is_not_part_of_the_dump() -> None:
    assert "root" not in ProjectConfig(root=Path("/x")).model_dump()


def test_unknown_connection_spec_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="Extra inputs"):
        ConnectionSpec.model_validate({"adapter": "http", "extra": 1})


def test_an_unset_variable_names_the_file_line_and_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLATYPUS_TEST_UNSET", raising=False)
    path = tmp_path / "platypus.yaml"
    path.write_text(
        "# ${PLATYPUS_TEST_UNSET} in a comment does not count\n"
        "connections:\n"
        "  billing:\n"
        "    adapter: http\n"
        "    settings: {base_url: '${PLATYPUS_TEST_UNSET}'}\n",
        encoding="utf-8",
    )

    with pytest.raises(ConfigurationError) as raised:
        load_config(path)

    assert str(raised.value).startswith(f"{path}:5: environment variable PLATYPUS_TEST_UNSET")


def test_unset_variables_lists_only_those_without_default() -> None:
    from platypus.config import unset_variables

    text = "${A} ${B:-x} ${C} ${D:-}"

    assert unset_variables(text, {"C": ""}) == ["A"]


def test_an_env_file_is_read_like_a_shell_would(tmp_path: Path) -> None:
    from platypus.flow.lint import read_env_file

    env = tmp_path / ".env"
    env.write_text(
        "# comment\n\nexport A=1\nB='two words'\nC=\"x\"\nD=plain # trailing\n", encoding="utf-8"
    )

    assert read_env_file(env) == {"A": "1", "B": "two words", "C": "x", "D": "plain"}
    env.write_text("A=1\nnot a line\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"\.env:2: expected NAME=value"):
        read_env_file(env)
