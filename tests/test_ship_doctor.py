"""`appliance doctor` against the real services: one line per check, non-zero on a failure.

The "all up" run uses the shared Kafka, Redis and PostgreSQL (`make services`; a database of
the test's own). Redis is stopped by starting a redis-server of the test's own on a free
port and stopping that one: the shared server stays up for the other tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance import doctor
from tests.conftest import make_appliance
from tests.kafka_broker import require_broker, unique
from tests.postgres_server import fresh_database
from tests.redis_servers import RedisServer, free_port, require_shared_redis

APPLIANCE = [sys.executable, "-m", "appliance"]


def run_doctor(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*APPLIANCE, "doctor", "--timeout", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def lines_by_check(stdout: str) -> dict[str, str]:
    """{check name: its line}; fails if a line is not `ok    name ...` or `FAIL  name ...`."""
    found = {}
    for line in stdout.splitlines():
        status, name = line[:6], line[6:].split(" ", 1)[0]
        assert status in ("ok    ", "FAIL  "), line
        found[name] = line
    return found


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_database() as dsn:
        yield dsn


@pytest.fixture
def env(tmp_path: Path, database: str) -> dict[str, str]:
    """The `local` profile (Kafka, Redis, Postgres) on the shared services."""
    require_broker()
    require_shared_redis()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    return environment | {
        "APPLIANCE_ENV": "local",
        "APPLIANCE_DATA_DIR": str(tmp_path / "data"),
        "APPLIANCE_PLUGINS__AUTOLOAD": "false",
        "APPLIANCE_KAFKA__TOPIC": unique("doctor"),
        "APPLIANCE_POSTGRES__DSN": database,
        "APPLIANCE_REDIS__KEY_PREFIX": unique("doctor"),
    }


def migrate(env: dict[str, str]) -> None:
    result = subprocess.run(
        [*APPLIANCE, "migrate"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_all_services_up_exit_zero_with_one_line_each(env: dict[str, str]) -> None:
    migrate(env)
    result = run_doctor(env)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = lines_by_check(result.stdout)
    assert sorted(lines) == ["data_dir", "kafka", "postgres", "redis"]
    assert all(line.startswith("ok    ") for line in lines.values()), result.stdout
    assert "127.0.0.1:9092" in lines["kafka"]
    assert "PING answered at 127.0.0.1:6379" in lines["redis"]
    assert "migrations: accounts" in lines["postgres"] and "analytics" in lines["postgres"]
    assert "appliance:appliance@" not in result.stdout + result.stderr  # no credentials


def test_redis_stopped_fails_naming_redis_and_its_fix(env: dict[str, str], tmp_path: Path) -> None:
    migrate(env)
    own_redis = RedisServer(tmp_path / "redis").start()
    try:
        env = env | {"APPLIANCE_REDIS__URL": own_redis.url}
        assert run_doctor(env).returncode == 0
    finally:
        own_redis.stop()
    result = run_doctor(env)
    assert result.returncode == 1
    lines = lines_by_check(result.stdout)
    assert lines["redis"].startswith("FAIL  redis")
    assert f"cannot reach Redis at 127.0.0.1:{own_redis.port}" in lines["redis"]
    assert "fix: start Redis, or correct APPLIANCE_REDIS__URL" in lines["redis"]
    assert all(lines[name].startswith("ok") for name in ("data_dir", "kafka", "postgres"))
    assert result.stderr.strip().splitlines()[-1] == "appliance: doctor: 1 of 4 checks failed"


def test_redis_password_is_checked_and_never_printed(env: dict[str, str], tmp_path: Path) -> None:
    password = "redis-password-for-doctor"
    own_redis = RedisServer(tmp_path / "redis", password=password).start()
    try:
        env = env | {"APPLIANCE_REDIS__URL": own_redis.url}
        missing = run_doctor(env)
        assert "FAIL  redis     REDIS.PASSWORD: Redis at" in missing.stdout
        assert "set APPLIANCE_REDIS__PASSWORD" in missing.stdout
        wrong = run_doctor(env | {"APPLIANCE_REDIS__PASSWORD": "not-" + password})
        assert "REDIS.PASSWORD" in lines_by_check(wrong.stdout)["redis"]
        assert "not-" + password not in wrong.stdout + wrong.stderr
        right = run_doctor(env | {"APPLIANCE_REDIS__PASSWORD": password})
        assert "ok    redis     PING answered" in right.stdout
        assert "(with a password)" in right.stdout
        assert password not in right.stdout + right.stderr
    finally:
        own_redis.stop()


def test_unmigrated_database_says_run_migrate(env: dict[str, str]) -> None:
    result = run_doctor(env)  # a brand-new database: nothing migrated yet
    assert result.returncode == 1
    line = lines_by_check(result.stdout)["postgres"]
    assert line.startswith("FAIL  postgres  connected to 127.0.0.1:5432/")
    assert re.search(r"accounts lacks migration\(s\) 1, 2(, \d+)* of \d+", line), line
    assert "fix: run `appliance migrate`" in line


def test_unreachable_broker_and_database_name_the_keys(tmp_path: Path) -> None:
    port = free_port()
    appliance = make_appliance(
        tmp_path / "data",
        transport="kafka",
        kafka={"bootstrap_servers": f"127.0.0.1:{port}"},
        account_store="postgres",
        postgres={"dsn": f"postgresql://app:secret-pw@127.0.0.1:{port}/app"},
    )
    results = {result.name: result for result in doctor.diagnose(appliance, timeout_s=1)}
    assert sorted(results) == ["data_dir", "kafka", "postgres"]
    assert results["data_dir"].ok
    kafka, postgres = results["kafka"], results["postgres"]
    assert not kafka.ok and f"no broker answered at 127.0.0.1:{port}" in kafka.detail
    assert "Connection refused" in kafka.detail and "KAFKA.BOOTSTRAP_SERVERS" in kafka.fix
    assert not postgres.ok and f"cannot connect to 127.0.0.1:{port}/app" in postgres.detail
    assert "APPLIANCE_POSTGRES__DSN" in postgres.fix
    assert "secret-pw" not in postgres.line() + kafka.line()


def test_an_unusable_data_dir_is_a_failed_check(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env = environment | {
        "APPLIANCE_DATA_DIR": str(blocker / "data"),
        "APPLIANCE_PLUGINS__AUTOLOAD": "false",
    }
    result = run_doctor(env)
    assert result.returncode == 1
    line = lines_by_check(result.stdout)["data_dir"]
    assert line.startswith(f"FAIL  data_dir  {blocker / 'data'} is not writable")
    assert "APPLIANCE_DATA_DIR" in line
    assert "Traceback" not in result.stderr
