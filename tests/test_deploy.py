"""Static checks of deploy/: the image, the Compose file and the Kubernetes manifests.

Nothing here builds or starts a container. The files are read as text and YAML
and checked against the real CLI (`platypus.cli.main`), the real configuration
defaults (`platypus.config`) and the real project files (`platypus.yaml`,
`flows/`), so that a change to any of them that the deployment files do not
follow fails here rather than in a cluster.
"""

from __future__ import annotations

import importlib
import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml

from platypus.cli import main
from platypus.config import IngressSettings, KafkaSettings, load_config

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "docker-compose.yml"
K8S = DEPLOY / "k8s"

INGRESS_PORT = IngressSettings().port
WORKER_HEALTH_PORT = KafkaSettings().web_port
INDEXER_PORT = 8788
LEDGER_ENV = "PLATYPUS_LEDGER_URL"
STORE_ENV = "PLATYPUS_STORE_URL"

# ------------------------------------------------------------------- helpers


def _dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuations joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        keyword, _, arguments = (pending + text).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def _stages() -> dict[str, list[tuple[str, str]]]:
    """Instructions per build stage, by stage name; the last stage is also ``"final"``."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, arguments in _dockerfile():
        if keyword == "FROM":
            current = []
            words = arguments.split()
            name = words[-1] if len(words) >= 3 and words[-2].upper() == "AS" else str(len(stages))
            stages[name] = current
        current.append((keyword, arguments))
    stages["final"] = current
    return stages


def _copied_sources(stage: list[tuple[str, str]]) -> set[str]:
    """The build-context paths a stage copies (``COPY --from`` excluded), without a trailing /."""
    sources: set[str] = set()
    for keyword, arguments in stage:
        words = arguments.split()
        if keyword == "COPY" and not any(w.startswith("--from") for w in words):
            paths = [w for w in words if not w.startswith("--")]
            sources.update(p.rstrip("/") for p in paths[:-1])
    return sources


def _workdir() -> PurePosixPath:
    """The final stage's working directory: the image's project folder."""
    workdirs = [a for k, a in _stages()["final"] if k == "WORKDIR"]
    assert workdirs, "the final stage of deploy/Dockerfile sets no WORKDIR"
    return PurePosixPath(workdirs[-1])


def _user_id() -> str:
    """The user (name or id, without the group) the final stage runs as."""
    users = [a for k, a in _stages()["final"] if k == "USER"]
    assert users, "the final stage of deploy/Dockerfile has no USER line"
    return users[-1].split(":")[0]


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def _platypus_services() -> dict[str, dict[str, Any]]:
    """Compose services that run the image's `platypus` entrypoint."""
    return {
        name: service
        for name, service in _compose()["services"].items()
        if "build" in service and "entrypoint" not in service
    }


def _manifest(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((K8S / name).read_text(encoding="utf-8"))
    return loaded


def _manifests() -> Iterator[dict[str, Any]]:
    for path in sorted(K8S.glob("*.yaml")):
        yield from yaml.safe_load_all(path.read_text(encoding="utf-8"))


def _deployments() -> dict[str, dict[str, Any]]:
    """The Deployments by component: ``worker``, ``web`` and ``indexer``."""
    return {
        "worker": _manifest("worker-deployment.yaml"),
        "web": _manifest("web-deployment.yaml"),
        "indexer": _manifest("indexer-deployment.yaml"),
    }


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "each Platypus pod runs exactly one container"
    container: dict[str, Any] = containers[0]
    return container


def _container_port(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port, resolving a port name to the container's number."""
    if isinstance(port, int):
        return port
    numbers = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    assert numbers, f"container {container['name']} has no port named {port!r}"
    return int(numbers[0])


def _parse(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """Parse a `platypus` argv with the real CLI: the subcommand and its parameters.

    Raises click's usage errors for an unknown subcommand, an unknown option or a
    value of the wrong type, exactly as `platypus` itself would.
    """
    name, *rest = argv
    assert name in main.commands, f"`platypus {name}` is not a command of platypus.cli.main"
    command = main.commands[name]
    with command.make_context(f"platypus {name}", list(rest)) as context:
        return name, dict(context.params)


def _platypus_invocations() -> list[tuple[str, list[str]]]:
    """Every `platypus` argv in deploy/: (where, argv)."""
    invocations = []
    for name, service in _platypus_services().items():
        invocations.append((f"docker-compose.yml: {name}", list(service["command"])))
    for component, deployment in _deployments().items():
        invocations.append((f"k8s {component}", list(_container(deployment)["args"])))
    default = json.loads(next(a for k, a in _stages()["final"] if k == "CMD"))
    invocations.append(("Dockerfile CMD", default))
    return invocations


def _served_port(argv: list[str]) -> int:
    """The port whose /healthz answers for `platypus worker|web|indexer` given this argv."""
    name, params = _parse(argv)
    config = load_config(root=ROOT)
    if name == "worker":
        return int(params["web_port"] or config.kafka.web_port)
    if name == "indexer":
        return int(params["port"])
    assert name == "web", f"`platypus {name}` serves no health endpoint"
    return int(params["port"] or config.ingress.port)


def _healthcheck_url(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    text = test if isinstance(test, str) else " ".join(test)
    urls = re.findall(r"https?://[^'\"\s]+", text)
    assert len(urls) == 1, f"expected one URL in the healthcheck, found {urls}"
    return str(urls[0])


def _env_names(environment: dict[str, Any] | list[str] | None) -> set[str]:
    if environment is None:
        return set()
    if isinstance(environment, dict):
        return set(environment)
    return {item.split("=", 1)[0] for item in environment}


def _project_files_in_pod(deployment: dict[str, Any]) -> dict[PurePosixPath, tuple[str, str]]:
    """Files a pod sees from ConfigMaps: path -> (ConfigMap name, key)."""
    pod = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    files: dict[PurePosixPath, tuple[str, str]] = {}
    for mount in _container(deployment)["volumeMounts"]:
        source = volumes[mount["name"]].get("configMap")
        if source is None:
            continue
        items = {i["path"]: i["key"] for i in source["items"]}
        target = PurePosixPath(mount["mountPath"])
        if "subPath" in mount:
            files[target] = (source["name"], items[mount["subPath"]])
        else:
            for path, key in items.items():
                files[target / path] = (source["name"], key)
    return files


def _flow_files() -> list[Path]:
    # Flow tests (`<flow>.test.yaml`) live beside the flows; pods do not need them.
    flows = sorted(p for p in (ROOT / "flows").glob("*.yaml") if not p.name.endswith(".test.yaml"))
    assert flows, "the repository has no flows/*.yaml"
    return flows


# ----------------------------------------------------------------- all files


@pytest.mark.parametrize(
    "path",
    sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")]),
    ids=lambda p: str(p.relative_to(DEPLOY)),
)
def test_every_deploy_yaml_file_parses_to_mappings(path: Path) -> None:
    documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    assert documents
    assert all(isinstance(d, dict) for d in documents)


# ----------------------------------------------------------------- the image


def test_dockerfile_runs_as_a_non_root_user_after_every_install() -> None:
    final = _stages()["final"]
    keywords = [k for k, _ in final]
    last_user = len(keywords) - 1 - keywords[::-1].index("USER")
    assert _user_id() not in {"root", "0"}
    assert "RUN" not in keywords[last_user:]


def test_dockerfile_exposes_the_ingress_port_and_the_worker_health_port() -> None:
    exposed = {
        int(port.split("/")[0])
        for keyword, arguments in _stages()["final"]
        if keyword == "EXPOSE"
        for port in arguments.split()
    }
    assert {INGRESS_PORT, WORKER_HEALTH_PORT} <= exposed


def test_dockerfile_entrypoint_is_the_platypus_console_script() -> None:
    entrypoints = [a for k, a in _stages()["final"] if k == "ENTRYPOINT"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert [json.loads(e) for e in entrypoints] == [["platypus"]]
    assert pyproject["project"]["scripts"]["platypus"] == "platypus.cli:main"


def test_dockerfile_build_stage_copies_everything_setup_py_installs() -> None:
    build = _stages()["build"]
    assert {
        "pyproject.toml",
        "setup.py",
        "README.md",
        "platypus",
        "adapters",
        "schemas",
    } <= _copied_sources(build)


def test_dockerfile_installs_without_test_or_dev_extras() -> None:
    installs = [a for k, a in _dockerfile() if k == "RUN" and "pip install" in a]
    assert installs
    assert not any(re.search(r"\[[^]]*\b(test|dev)\b", a) for a in installs)
    assert not any(re.search(r"(^|\s)(-e|--editable)\s", a) for a in installs)


def test_dockerfile_bakes_platypus_yaml_flows_and_samples_into_the_workdir() -> None:
    final = _stages()["final"]
    keywords = [k for k, _ in final]
    assert {"platypus.yaml", "flows", "samples"} <= _copied_sources(final)
    # The project files are copied relative to the project folder.
    assert keywords.index("WORKDIR") < keywords.index("COPY", keywords.index("WORKDIR"))
    assert _workdir().is_absolute()


def test_dockerignore_excludes_local_state_but_nothing_the_dockerfile_copies() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    copied = _copied_sources(_stages()["build"]) | _copied_sources(_stages()["final"])
    assert not copied & ignored
    assert {".venv", ".git"} <= ignored


# ------------------------------------------------------------------- the CLI


@pytest.mark.parametrize(
    ("where", "argv"), _platypus_invocations(), ids=[w for w, _ in _platypus_invocations()]
)
def test_every_platypus_command_in_deploy_parses_with_the_real_cli(
    where: str, argv: list[str]
) -> None:
    try:
        name, _params = _parse(argv)
    except click.ClickException as exc:
        pytest.fail(f"{where}: `platypus {' '.join(argv)}`: {exc.format_message()}")
    assert name in {"worker", "web", "indexer"}


def test_web_listens_on_all_interfaces_in_compose_and_k8s() -> None:
    compose = _parse(_platypus_services()["web"]["command"])
    k8s = _parse(_container(_deployments()["web"])["args"])
    assert (compose[0], compose[1]["host"]) == ("web", "0.0.0.0")
    assert (k8s[0], k8s[1]["host"]) == ("web", "0.0.0.0")


# ------------------------------------------------------------------------ ports


def test_worker_healthchecks_and_probes_use_the_default_worker_health_port() -> None:
    service = _platypus_services()["worker"]
    url = urlsplit(_healthcheck_url(service))
    assert (url.port, url.path) == (_served_port(service["command"]), "/readyz")
    assert url.port == WORKER_HEALTH_PORT

    container = _container(_deployments()["worker"])
    assert _served_port(container["args"]) == WORKER_HEALTH_PORT
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        if kind in container:
            probe = container[kind]["httpGet"]
            assert _container_port(container, probe["port"]) == WORKER_HEALTH_PORT, kind


def test_web_healthchecks_probes_and_service_use_the_default_ingress_port() -> None:
    service = _platypus_services()["web"]
    url = urlsplit(_healthcheck_url(service))
    assert (url.port, url.path) == (_served_port(service["command"]), "/readyz")
    assert url.port == INGRESS_PORT
    published = {str(p).rsplit(":", 1)[-1] for p in service["ports"]}
    assert published == {str(INGRESS_PORT)}

    container = _container(_deployments()["web"])
    assert _served_port(container["args"]) == INGRESS_PORT
    for kind in ("livenessProbe", "readinessProbe"):
        probe = container[kind]["httpGet"]
        assert _container_port(container, probe["port"]) == INGRESS_PORT, kind
    ports = _manifest("web-service.yaml")["spec"]["ports"]
    assert [(p["port"], _container_port(container, p["targetPort"])) for p in ports] == [
        (80, INGRESS_PORT)
    ]


# ---------------------------------------------------------------- environment


def test_every_environment_variable_is_the_broker_or_named_in_platypus_yaml() -> None:
    broker_envvars = {
        param.envvar
        for name in ("worker", "web")
        for param in main.commands[name].params
        if "--broker" in param.opts
    }
    assert broker_envvars == {"PLATYPUS_BROKER"}
    # Comments count: a commented-out setting (`token_env: VENDOR_TOKEN`, a line
    # to uncomment to turn authentication on) names its variable too.
    text = (ROOT / "platypus.yaml").read_text(encoding="utf-8")
    named = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    named |= set(re.findall(r"token_env:\s*([A-Za-z_][A-Za-z0-9_]*)", text))
    # Secrets are SecretRefs, `{env: NAME}`, read when the connection starts.
    named |= set(re.findall(r"\{\s*env:\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}", text))
    allowed = broker_envvars | named

    used: dict[str, set[str]] = {}
    for name, service in _platypus_services().items():
        used[f"docker-compose.yml: {name}"] = _env_names(service.get("environment"))
    for component, deployment in _deployments().items():
        env = _container(deployment).get("env", [])
        used[f"k8s {component}"] = {e["name"] for e in env}
    for name in ("secret.yaml", "database-secret.yaml"):
        secret = _manifest(name)
        keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
        # POSTGRES_PASSWORD is the postgres image's own, for postgres-statefulset.yaml.
        used[f"k8s {name}"] = keys - {"POSTGRES_PASSWORD"}

    assert {where: names - allowed for where, names in used.items() if names - allowed} == {}
    assert {LEDGER_ENV, STORE_ENV} <= named


def test_worker_deployment_loads_the_secret_as_environment() -> None:
    secret = _manifest("secret.yaml")
    env_from = _container(_deployments()["worker"]).get("envFrom", [])
    assert secret["kind"] == "Secret"
    assert {"secretRef": {"name": secret["metadata"]["name"]}} in env_from


# ------------------------------------------------------------ project folder


def test_configmap_holds_platypus_yaml_and_every_flow_byte_for_byte() -> None:
    configmap = _manifest("configmap-flows.yaml")
    expected = {p.name: p.read_bytes() for p in [ROOT / "platypus.yaml", *_flow_files()]}
    data = {key: value.encode("utf-8") for key, value in configmap["data"].items()}
    assert sorted(data) == sorted(expected)
    for name, content in expected.items():
        assert data[name] == content, (
            f"deploy/k8s/configmap-flows.yaml key {name} differs from the repository's file; "
            "copy the file's content into the manifest"
        )


@pytest.mark.parametrize("component", ["worker", "web", "indexer"])
def test_deployment_mounts_the_configmap_as_the_image_project_folder(component: str) -> None:
    configmap = _manifest("configmap-flows.yaml")["metadata"]["name"]
    project = _workdir()
    flows = project / load_config(root=ROOT).flows.as_posix()
    expected = {project / "platypus.yaml": (configmap, "platypus.yaml")}
    expected |= {flows / p.name: (configmap, p.name) for p in _flow_files()}
    assert _project_files_in_pod(_deployments()[component]) == expected


def test_compose_mounts_platypus_yaml_and_flows_at_the_image_project_folder() -> None:
    project = _workdir()
    for name, service in _platypus_services().items():
        mounts = {}
        for volume in service["volumes"]:
            source, target, *_mode = volume.split(":")
            mounts[PurePosixPath(target)] = (DEPLOY / source).resolve()
        assert mounts == {
            project / "platypus.yaml": ROOT / "platypus.yaml",
            project / "flows": ROOT / "flows",
        }, name


# ---------------------------------------------------------------- compose


def test_compose_kafka_runs_in_kraft_mode_without_zookeeper() -> None:
    services = _compose()["services"]
    environment = services["kafka"]["environment"]
    roles = {r.strip() for r in str(environment["KAFKA_PROCESS_ROLES"]).split(",")}
    assert roles == {"broker", "controller"}
    assert "KAFKA_CONTROLLER_QUORUM_VOTERS" in environment
    assert not any(key.startswith("KAFKA_ZOOKEEPER") for key in environment)
    assert not any(
        "zookeeper" in f"{name} {service.get('image', '')}".lower()
        for name, service in services.items()
    )


def test_compose_platypus_services_use_the_compose_kafka_once_healthy() -> None:
    services = _compose()["services"]
    assert "healthcheck" in services["kafka"]
    for name, service in _platypus_services().items():
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy", name
        assert service["environment"]["PLATYPUS_BROKER"] == "kafka://kafka:9092", name


def test_compose_runs_two_workers_two_web_replicas_and_one_indexer() -> None:
    services = _platypus_services()
    assert _parse(services["worker"]["command"])[0] == "worker"
    assert services["worker"]["deploy"]["replicas"] == 2
    assert _parse(services["web"]["command"])[0] == "web"
    assert services["web"]["deploy"]["replicas"] == 2
    # Two replicas cannot publish one host port: a range, one port each.
    assert services["web"]["ports"] == [f"{INGRESS_PORT}-{INGRESS_PORT + 1}:{INGRESS_PORT}"]
    assert services["indexer"]["command"][0] == "indexer"
    assert services["indexer"].get("deploy", {}).get("replicas", 1) == 1
    url = urlsplit(_healthcheck_url(services["indexer"]))
    assert (url.port, url.path) == (INDEXER_PORT, "/readyz")


def test_compose_has_postgresql_and_every_platypus_service_shares_the_ledger() -> None:
    services = _compose()["services"]
    assert str(services["postgres"]["image"]).startswith("postgres:")
    assert "healthcheck" in services["postgres"]
    urls = set()
    for name, service in _platypus_services().items():
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy", name
        urls.add(service["environment"][LEDGER_ENV])
    [url] = urls  # one database for all of them
    assert url.startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in url
    assert services["indexer"]["environment"][STORE_ENV] == url


def test_compose_stand_in_vendor_is_the_demo_vendor_app_factory() -> None:
    entrypoint = _compose()["services"]["vendor"]["entrypoint"]
    target = entrypoint[entrypoint.index("--factory") + 1]
    module, _, attribute = target.partition(":")
    factory = getattr(importlib.import_module(module), attribute)
    assert callable(factory)


# -------------------------------------------------------------- kubernetes


@pytest.mark.parametrize("component", ["worker", "web"])
def test_deployment_probes_liveness_on_healthz_and_readiness_on_readyz(component: str) -> None:
    container = _container(_deployments()[component])
    for kind, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert kind in container, f"the {component} container has no {kind}"
        assert container[kind]["httpGet"]["path"] == path, kind


def test_indexer_deployment_is_one_replica_probed_on_its_port() -> None:
    deployment = _deployments()["indexer"]
    assert deployment["spec"]["replicas"] == 1
    container = _container(deployment)
    assert container["args"][0] == "indexer"
    assert _served_port(container["args"]) == INDEXER_PORT
    for kind, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        probe = container[kind]["httpGet"]
        assert (_container_port(container, probe["port"]), probe["path"]) == (
            INDEXER_PORT,
            path,
        ), kind
    ports = _manifest("indexer-service.yaml")["spec"]["ports"]
    assert [(p["port"], _container_port(container, p["targetPort"])) for p in ports] == [
        (80, INDEXER_PORT)
    ]


def test_the_shared_ledger_is_on_by_default_from_a_kubernetes_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database = _manifest("database-secret.yaml")
    assert database["kind"] == "Secret"
    refs = {"secretRef": {"name": database["metadata"]["name"]}}
    for component in ("worker", "web", "indexer"):
        assert refs in _container(_deployments()[component]).get("envFrom", []), component
    url = database["stringData"][LEDGER_ENV]
    store = database["stringData"][STORE_ENV]
    # platypus.yaml reads them: the ledger every worker shares and the failed-event
    # store, unless the variables are unset (then SQLite in data_dir, on one machine).
    monkeypatch.setenv(LEDGER_ENV, url)
    monkeypatch.setenv(STORE_ENV, store)
    config = load_config(root=ROOT)
    assert (config.kafka.ledger_url, config.failures_store) == (url, store)
    monkeypatch.delenv(LEDGER_ENV)
    monkeypatch.delenv(STORE_ENV)
    config = load_config(root=ROOT)
    assert not config.kafka.ledger_url
    assert not config.failures_store


def test_k8s_runs_postgresql_and_kafka_in_kraft_mode_behind_the_addresses_used() -> None:
    postgres = _manifest("postgres-statefulset.yaml")
    kafka = _manifest("kafka-statefulset.yaml")
    assert (postgres["kind"], kafka["kind"]) == ("StatefulSet", "StatefulSet")
    env = {
        e["name"]: e.get("value") for e in kafka["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert {r.strip() for r in str(env["KAFKA_PROCESS_ROLES"]).split(",")} == {
        "broker",
        "controller",
    }
    assert not any(name.startswith("KAFKA_ZOOKEEPER") for name in env)
    services = {m["metadata"]["name"] for m in _manifests() if m["kind"] == "Service"}
    assert {"platypus-postgres", "platypus-kafka"} <= services
    for component in ("worker", "web", "indexer"):
        broker = {e["name"]: e["value"] for e in _container(_deployments()[component])["env"]}
        assert broker["PLATYPUS_BROKER"] == "kafka://platypus-kafka:9092", component
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://platypus-kafka:9092"
    assert "@platypus-postgres:5432/" in _manifest("database-secret.yaml")["stringData"][LEDGER_ENV]


@pytest.mark.parametrize("component", ["worker", "web"])
def test_deployment_runs_as_the_image_non_root_user(component: str) -> None:
    pod = _deployments()[component]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == _user_id()


def test_worker_and_web_deployments_run_two_replicas() -> None:
    assert _deployments()["worker"]["spec"]["replicas"] == 2
    assert _deployments()["web"]["spec"]["replicas"] == 2


def test_k8s_resources_share_app_kubernetes_io_labels_and_selectors_match() -> None:
    for manifest in _manifests():
        labels = manifest["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "platypus", manifest["metadata"]["name"]
        assert "app.kubernetes.io/component" in labels, manifest["metadata"]["name"]
    for component, deployment in _deployments().items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        template = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= template.items(), component
        assert selector["app.kubernetes.io/component"] == component
    service = _manifest("web-service.yaml")["spec"]["selector"]
    templates = {c: d["spec"]["template"]["metadata"]["labels"] for c, d in _deployments().items()}
    assert service.items() <= templates["web"].items()
    assert not service.items() <= templates["worker"].items()


def test_compose_requires_the_postgres_password_and_ships_no_default() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    uses = re.findall(r"\$\{POSTGRES_PASSWORD([^}]*)\}", text)

    assert len(uses) == 3  # the ledger URL, the store URL and the postgres service
    assert all(use.startswith(":?") for use in uses), uses  # refuse to start without one
