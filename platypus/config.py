"""The project configuration: ``platypus.yaml`` beside the ``flows/`` folder.

::

    flows: flows                        # folder of flow files, relative to this file
    data_dir: .platypus                 # where the embedded event log lives
    concurrency: 16                     # adapter calls in flight at once
    partitions: 8                       # partitions of the embedded events topic
    retry:                              # default retry policy; flows and steps override
      max_elapsed: 10m                  # the default: rides out a 10-minute vendor outage
      initial_delay: 1s
    ordering:                           # ordering key by event type (default: subject)
      sales.opportunity.closed_won.v1: data.account_id
    connections:                        # adapter instances that steps write to
      billing:
        adapter: http
        settings:
          base_url: ${BILLING_URL:-http://127.0.0.1:8181}
          auth: {type: bearer, token_env: BILLING_TOKEN}
    sources:                            # webhooks taken in at POST /webhooks/<name>
      greenhouse: {decoder: hmac, secret: {env: GREENHOUSE_SECRET}, format: "sha256 {hex}"}
    ops:                                # the dashboard at /ops, its users, alerts
      session_secret: {env: PLATYPUS_SESSION_SECRET}
      users:
        ana: {role: operator, password_hash: "scrypt$16384$8$1$..."}
      tokens:
        grafana: {role: viewer, token: {env: PLATYPUS_OPS_TOKEN}}
      alerts:
        connection: team-slack          # a connection of the slack adapter
        rules: [{flow: "*", threshold: 10, window: 5m}]

``${VAR}`` and ``${VAR:-default}`` are replaced from the environment, so secrets
stay out of the file. A step may also name an adapter directly (``sink.send``)
when that adapter needs no settings.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    model_validator,
)

from platypus.exceptions import ConfigurationError
from platypus.keys import OrderingKeys
from platypus.retry import Duration, RetryPolicy
from platypus.secrets import SecretRef

__all__ = [
    "AlertRule",
    "AlertSettings",
    "ConnectionSpec",
    "IngressSettings",
    "KafkaSettings",
    "LoginThrottle",
    "OpsSettings",
    "OpsToken",
    "OpsUser",
    "ProjectConfig",
    "RetentionSettings",
    "Role",
    "SourceSpec",
    "expand_env",
    "load_config",
    "unset_variables",
]

CONFIG_FILE = "platypus.yaml"

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConnectionSpec(BaseModel):
    """An adapter with its settings, named so that flow steps can write to it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    adapter: str = Field(description="Adapter name, e.g. http.")
    settings: dict[str, Any] = Field(default_factory=dict, description="The adapter's settings.")
    max_concurrency: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Calls in flight to this connection at once, shared by every flow that uses it "
            "(Salesforce allows 25 long-running requests per org, for instance)."
        ),
    )
    rate_limit: float | None = Field(
        default=None, gt=0, description="Most calls per second to this connection."
    )


class SourceSpec(BaseModel):
    """A webhook receiver at ``POST /webhooks/<name>``: a decoder and its settings.

    The settings sit beside ``decoder`` (``{decoder: hmac, secret: {env: KEY}}``);
    which ones exist depends on the decoder, which checks them at start-up.
    docs/sources.md describes each decoder.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    decoder: str = Field(
        description="Webhook decoder: zuora_callout, salesforce_outbound or hmac (or a plugin)."
    )

    @property
    def settings(self) -> dict[str, Any]:
        """The decoder's settings: every key but ``decoder``."""
        return dict(self.model_extra or {})


# A source name is the last segment of its URL.
SourceName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]


class IngressSettings(BaseModel):
    """The HTTP ingress (``POST /events``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(default="127.0.0.1", description="Interface to listen on.")
    port: int = Field(default=8787, ge=0, le=65535, description="Port; 0 picks a free one.")
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest request body accepted (413 above)."
    )
    max_batch: int = Field(default=1000, ge=1, description="Most events in one batch request.")


class KafkaSettings(BaseModel):
    """The Kafka runtime (``platypus worker``, ``platypus web``).

    Topics are ``<topic_prefix>.events`` (CloudEvents keyed by their ordering key,
    the ``subject`` unless ``ordering:`` says otherwise),
    ``<topic_prefix>.dead-letter``, ``<topic_prefix>.outcomes`` (how each event
    ended, for ``platypus indexer``) and ``<topic_prefix>.rejected``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    broker: str = Field(
        default="kafka://127.0.0.1:9092",
        description="Broker URL(s), kafka://host:port[;host:port]; PLATYPUS_BROKER overrides it.",
    )
    group_id: str = Field(default="platypus", description="Consumer group of the workers.")
    topic_prefix: str = Field(default="platypus", description="Prefix of every topic name.")
    partitions: int = Field(default=8, ge=1, description="Partitions of topics Platypus creates.")
    replication_factor: int = Field(default=1, ge=1, description="Of topics Platypus creates.")
    max_in_flight: int = Field(
        default=5000, ge=1, description="Events fetched but not yet finished, per worker."
    )
    session_timeout: float = Field(
        default=10.0, gt=0, description="Seconds before a silent worker's partitions move."
    )
    rebalance_timeout: float = Field(default=10.0, gt=0, description="Rebalance timeout (s).")
    heartbeat_interval: float = Field(default=2.0, gt=0, description="Heartbeat interval (s).")
    web_port: int = Field(
        default=6066, ge=0, le=65535, description="Worker's health endpoint (/healthz)."
    )
    ledger_url: str | None = Field(
        default=None,
        description=(
            "Delivery ledger shared by all workers (SQLAlchemy URL, e.g. "
            "postgresql+psycopg://host/db); default: a SQLite file in each worker's data_dir, "
            "enough only when all workers share one machine."
        ),
    )
    idempotent_producer: bool = Field(
        default=True,
        description=(
            "Idempotent producer for the ingress (no duplicates from producer retries). "
            "Turn off for brokers without InitProducerId, such as Tansu."
        ),
    )

    @property
    def bootstrap_servers(self) -> str:
        """``host:port[,host:port]`` for Kafka clients."""
        servers = self.broker.split("://", 1)[-1]
        return servers.replace(";", ",")

    def topic(self, name: str) -> str:
        """The full name of topic ``name`` (events, dead-letter, rejected)."""
        return f"{self.topic_prefix}.{name}"


class Role(StrEnum):
    """What a dashboard user or API token may do with failed events."""

    VIEWER = "viewer"
    """Look: the overview, lists, search, details (personal data masked), the audit trail."""
    OPERATOR = "operator"
    """Also replay (with the event or an edited one) and discard."""


class OpsUser(BaseModel):
    """A dashboard user: a role and a password, given as a hash or as a secret."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role = Field(default=Role.VIEWER, description="viewer or operator.")
    reveal: bool = Field(
        default=False,
        description="May reveal masked personal-data fields (each reveal is audited).",
    )
    password_hash: SecretStr | None = Field(
        default=None,
        description=(
            "scrypt hash of the password, from `python -m platypus.ops.auth hash-password`."
        ),
    )
    password: SecretRef | None = Field(
        default=None, description="The password itself, from {env: NAME} or {file: PATH}."
    )

    @model_validator(mode="after")
    def _one_password(self) -> OpsUser:
        if (self.password_hash is None) == (self.password is None):
            raise ValueError("give a user either password_hash or password, exactly one")
        return self


class OpsToken(BaseModel):
    """A bearer token for the dashboard's JSON API (``Authorization: Bearer ...``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role = Field(default=Role.VIEWER, description="viewer or operator.")
    reveal: bool = Field(default=False, description="May reveal personal-data fields.")
    token: SecretRef = Field(description="The token, from {env: NAME} or {file: PATH}.")


class AlertRule(BaseModel):
    """Alert when a flow has ``threshold`` failed entries or more within ``window``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flow: str = Field(default="*", description="The flow, or * for every flow (each on its own).")
    threshold: int = Field(ge=1, description="Failed entries in the window that raise an alert.")
    window: Duration = Field(default=300.0, gt=0, description="The window, e.g. 5m.")


class LoginThrottle(BaseModel):
    """How many failed dashboard logins are allowed before more attempts are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_user: int = Field(
        default=5, ge=1, description="Failed logins for one user name within the window."
    )
    per_address: int = Field(
        default=20, ge=1, description="Failed logins from one client address within the window."
    )
    window: Duration = Field(
        default=900.0,
        gt=0,
        description=(
            "How far back failures count (e.g. 15m); attempts are refused (429) until "
            "enough of them are older than this."
        ),
    )


class AlertSettings(BaseModel):
    """Failure alerts posted to Slack through a connection of the ``slack`` adapter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connection: str = Field(description="The Slack connection to post with.")
    channel: str | None = Field(
        default=None, description="Channel to post to; default: the connection's default."
    )
    rules: list[AlertRule] = Field(
        default_factory=lambda: [AlertRule(threshold=10)],
        description="When to alert; the first rule naming a flow wins over `*`.",
    )
    cooldown: Duration = Field(
        default=900.0, ge=0, description="At most one alert per flow in this time (e.g. 15m)."
    )
    interval: Duration = Field(default=30.0, gt=0, description="How often the rules are checked.")
    dashboard_url: str | None = Field(
        default=None,
        description="Link to the dashboard put in alerts, e.g. https://ops.example/ops.",
    )


class OpsSettings(BaseModel):
    """The operations dashboard at ``/ops``, its users and tokens, metrics and alerts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dashboard: bool = Field(default=True, description="Serve the dashboard at /ops.")
    users: dict[str, OpsUser] = Field(
        default_factory=dict, description="Dashboard users by name (session login)."
    )
    tokens: dict[str, OpsToken] = Field(
        default_factory=dict, description="JSON API bearer tokens by name (the name is audited)."
    )
    session_secret: SecretRef | None = Field(
        default=None,
        description=(
            "Key that signs session cookies; default: a random key kept in the "
            "failed-event store, shared by every process that uses the store."
        ),
    )
    session_max_age: Duration = Field(
        default=28_800.0, gt=0, description="How long a login lasts (e.g. 8h)."
    )
    login_throttle: LoginThrottle = Field(
        default_factory=LoginThrottle, description="Failed logins allowed per user and address."
    )
    secure_cookies: bool = Field(
        default=False, description="Mark cookies Secure (serve the dashboard over HTTPS)."
    )
    metrics_token: SecretRef | None = Field(
        default=None,
        description="When set, GET /metrics needs `Authorization: Bearer <token>`.",
    )
    alerts: AlertSettings | None = Field(default=None, description="Failure alerts to Slack.")


class RetentionSettings(BaseModel):
    """How long the embedded event log keeps what it no longer needs; 0 keeps it forever.

    Compaction runs every ``interval`` while ``platypus run`` is up, and deletes
    only what nothing waits for: event records already committed, dead letters
    already in the failed-event store. docs/operations.md explains each choice.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    events: Duration = Field(
        default=7 * 86400.0,
        description=(
            "Processed event records, counted from when they were accepted. Also how long "
            "a second copy of an event (same source and id) is recognised as a duplicate."
        ),
    )
    dead_letters: Duration = Field(
        default=30 * 86400.0,
        description="Dead-letter records, once the failed-event store has taken them in.",
    )
    outcomes: Duration = Field(
        default=30 * 86400.0, description="How each event ended in each flow."
    )
    deliveries: Duration = Field(
        default=30 * 86400.0,
        description=(
            "Steps remembered as delivered. A replay of an event older than this sends "
            "its delivered steps again (vendors with their own idempotency take it as one)."
        ),
    )
    rejected: Duration = Field(
        default=30 * 86400.0, description="Request bodies the ingress refused."
    )
    interval: Duration = Field(default=300.0, gt=0, description="How often compaction runs.")


class ProjectConfig(BaseModel):
    """Everything ``platypus run`` needs besides the flows themselves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flows: Path = Field(default=Path("flows"), description="Folder of flow YAML files.")
    data_dir: Path = Field(default=Path(".platypus"), description="Embedded event log folder.")
    retention: RetentionSettings = Field(
        default_factory=RetentionSettings,
        description="How long the embedded event log keeps records, outcomes and the rest.",
    )
    partitions: int = Field(default=8, ge=1, le=256, description="Partitions of the topic.")
    concurrency: int = Field(
        default=16, ge=1, le=4096, description="Adapter calls in flight at once, all keys."
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy, description="Default retry policy.")
    ordering: OrderingKeys = Field(
        default_factory=OrderingKeys,
        description=(
            "Ordering key by event type: an expression over the event (data.account_id); "
            "events of one key are processed in order and share a partition. "
            "Default: the subject."
        ),
    )
    ingress: IngressSettings = Field(
        default_factory=IngressSettings, description="The HTTP ingress: POST /events, webhooks."
    )
    kafka: KafkaSettings = Field(
        default_factory=KafkaSettings,
        description="The Kafka runtime (platypus web, platypus worker); docs/kafka.md.",
    )
    failures_store: str | None = Field(
        default=None,
        description=(
            "Failed-event store URL (SQLAlchemy), e.g. postgresql+psycopg://host/db; "
            "default: a SQLite file in data_dir."
        ),
    )
    connections: dict[str, ConnectionSpec] = Field(
        default_factory=dict,
        description="Adapter instances by name; a step writes to connection.action.",
    )
    sources: dict[SourceName, SourceSpec] = Field(
        default_factory=dict,
        description="Webhook receivers by name, each served at POST /webhooks/<name>.",
    )
    # Checked by platypus.sources.pollers.PollerSpec when the pollers start (that
    # model lives with the pollers; importing it here would be circular).
    pollers: dict[SourceName, dict[str, Any]] = Field(
        default_factory=dict,
        description="Vendors read on a schedule, by name (docs/sources.md, Pollers).",
    )
    ops: OpsSettings = Field(
        default_factory=OpsSettings,
        description="The operations dashboard, its users, metrics and alerts.",
    )

    # Where the file was read from; relative paths resolve against its folder.
    root: Path = Field(default=Path(), exclude=True)

    def resolve(self, path: Path) -> Path:
        """``path`` relative to the project root unless already absolute."""
        return path if path.is_absolute() else self.root / path

    def connection(self, name: str) -> ConnectionSpec:
        """The connection called ``name``; an adapter name stands for itself, unconfigured."""
        spec = self.connections.get(name)
        return spec if spec is not None else ConnectionSpec(adapter=name)


def expand_env(value: Any, environ: Mapping[str, str] | None = None) -> Any:
    """Replace ``${VAR}``/``${VAR:-default}`` in every string of ``value``.

    A variable that is unset and has no default is a `ConfigurationError`, so a
    missing secret is noticed at start-up rather than at the first delivery.
    """
    env = os.environ if environ is None else environ
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            # As in the shell: ``:-`` uses the default when the variable is unset or empty.
            if env.get(name) or (name in env and default is None):
                return env[name]
            if default is not None:
                return default
            raise ConfigurationError(
                f"environment variable {name} is not set and has no default "
                f"(write ${{{name}:-default}} to give one)"
            )

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: expand_env(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env) for v in value]
    return value


def unset_variables(text: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """Names of the ``${VAR}`` in ``text`` that are unset and have no default."""
    env = os.environ if environ is None else environ
    return [
        match.group(1)
        for match in _VAR.finditer(text)
        if match.group(2) is None and match.group(1) not in env
    ]


def load_config(path: Path | None = None, *, root: Path | None = None) -> ProjectConfig:
    """Read ``platypus.yaml`` (or defaults when there is none) from ``root``."""
    if path is None:
        base = root or Path.cwd()
        path = base / CONFIG_FILE
        if not path.exists():
            return ProjectConfig(root=base)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{path}: expected a mapping at the top level")
    try:
        expanded = expand_env(raw)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{path}:{_line_of_unset(path)}: {exc}") from None
    try:
        return ProjectConfig.model_validate({**expanded, "root": path.parent})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in exc.errors(include_input=False)
        )
        raise ConfigurationError(f"{path}: {problems}") from None


def _line_of_unset(path: Path) -> int:
    """The line of the first ``${VAR}`` of ``path`` that is unset with no default."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.lstrip().startswith("#") and unset_variables(line):
            return number
    return 1
