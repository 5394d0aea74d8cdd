"""Shared fixtures: real Redis and PostgreSQL servers, fresh databases per test.

A server is taken from the environment (``UNDERTONE_TEST_REDIS_URL``,
``UNDERTONE_TEST_DATABASE_URL``), else from its default local address if it answers, else
spawned for the session in a temporary directory and stopped at the end. A test skips (with
the reason) only when a server can neither be found nor spawned.

Isolation: every test gets its own PostgreSQL database (created and dropped with ``WITH
(FORCE)``, since a killed worker may still hold connections) and its own Redis database
number, claimed atomically so that concurrent test sessions on one shared server never
share a queue.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REDIS_DEFAULT = "redis://127.0.0.1:6379"
POSTGRES_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
# Marks a Redis database as taken by one test; the key also makes the database non-empty.
_REDIS_OWNER_KEY = "undertone-test:owner"
_SERVER_START_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return True
        time.sleep(0.2)
    return False


# --------------------------------------------------------------------------------------- Redis


def _redis_answers(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@dataclass
class _Spawned:
    process: subprocess.Popen[bytes]
    workdir: Path


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """Base URL (no database number) of a real Redis server for this session."""
    configured = os.environ.get("UNDERTONE_TEST_REDIS_URL")
    if configured:
        if not _redis_answers(configured):
            pytest.fail(f"UNDERTONE_TEST_REDIS_URL={configured} does not answer PING")
        yield configured.rstrip("/")
        return
    if _redis_answers(REDIS_DEFAULT):
        yield REDIS_DEFAULT
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no Redis: UNDERTONE_TEST_REDIS_URL unset, 127.0.0.1:6379 silent, "
                    "and redis-server is not installed")
    spawned = _spawn_redis(binary)
    try:
        yield spawned[0]
    finally:
        spawned[1].process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            spawned[1].process.wait(timeout=15)
        shutil.rmtree(spawned[1].workdir, ignore_errors=True)


def _spawn_redis(binary: str) -> tuple[str, _Spawned]:
    workdir = Path(tempfile.mkdtemp(prefix="undertone-redis-"))
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
         "--save", "", "--appendonly", "no", "--databases", "64"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}"
    if not _wait_for(lambda: _redis_answers(url), _SERVER_START_TIMEOUT):
        process.kill()
        pytest.skip(f"spawned redis-server on port {port} never answered")
    return url, _Spawned(process, workdir)


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """A Redis URL with a database number of its own for this test, flushed afterwards."""
    import redis

    base = redis.Redis.from_url(redis_server_url)
    try:
        databases = int(base.config_get("databases").get("databases", 16))
    except redis.RedisError:
        databases = 16
    finally:
        base.close()
    token = uuid.uuid4().hex
    # Database 0 is left to whatever else uses a shared server.
    for number in range(1, databases):
        client = redis.Redis.from_url(f"{redis_server_url}/{number}")
        try:
            if client.dbsize() == 0 and client.set(_REDIS_OWNER_KEY, token, nx=True, ex=3600):
                break
        finally:
            client.close()
    else:
        pytest.skip(f"every Redis database on {redis_server_url} is in use")
    url = f"{redis_server_url}/{number}"
    try:
        yield url
    finally:
        client = redis.Redis.from_url(url)
        try:
            client.flushdb()
        finally:
            client.close()


# ---------------------------------------------------------------------------------- PostgreSQL


def _plain_pg_url(url: str) -> str:
    """A libpq URL (psycopg) from a SQLAlchemy one."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _postgres_answers(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(_plain_pg_url(url), connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _postgres_bin_dir() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """SQLAlchemy URL of a maintenance database on a real PostgreSQL server for this session."""
    configured = os.environ.get("UNDERTONE_TEST_DATABASE_URL")
    if configured:
        if not _postgres_answers(configured):
            pytest.fail(f"UNDERTONE_TEST_DATABASE_URL={configured} does not answer")
        yield configured
        return
    if _postgres_answers(POSTGRES_DEFAULT):
        yield POSTGRES_DEFAULT
        return
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL: UNDERTONE_TEST_DATABASE_URL unset, 127.0.0.1:5432 silent, "
                    "and initdb/pg_ctl are not installed")
    url, stop = _spawn_postgres(bin_dir)
    try:
        yield url
    finally:
        stop()


def _spawn_postgres(bin_dir: Path) -> tuple[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="undertone-pg-"))
    data = workdir / "data"
    port = _free_port()
    # initdb refuses to run as root: run the cluster as an unprivileged user then.
    user: str | None = None
    if os.geteuid() == 0:
        user = "nobody"
        shutil.chown(workdir, user=user)
        workdir.chmod(0o700)
    run_kwargs: dict[str, Any] = {"user": user} if user else {}
    log = workdir / "server.log"
    try:
        subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--no-sync"],
            check=True, capture_output=True, **run_kwargs,
        )
        subprocess.run(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
             "-o", f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off",
             "start"],
            check=True, capture_output=True, **run_kwargs,
        )
    except (subprocess.CalledProcessError, OSError) as error:
        shutil.rmtree(workdir, ignore_errors=True)
        detail = getattr(error, "stderr", b"") or b""
        pytest.skip(f"could not spawn PostgreSQL from {bin_dir}: {error} {detail[-300:]!r}")

    def stop() -> None:
        subprocess.run(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False, capture_output=True, **run_kwargs,
        )
        shutil.rmtree(workdir, ignore_errors=True)

    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    if not _wait_for(lambda: _postgres_answers(url), _SERVER_START_TIMEOUT):
        stop()
        pytest.skip(f"spawned PostgreSQL on port {port} never answered")
    return url, stop


def _with_database(url: str, name: str) -> str:
    head, _, _ = url.rpartition("/")
    return f"{head}/{name}"


def _migrate(url: str) -> None:
    from service.db.migrate import upgrade

    upgrade(url)


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, migrated PostgreSQL database, dropped after the test."""
    import psycopg

    name = f"undertone_test_{uuid.uuid4().hex[:16]}"
    admin = _plain_pg_url(postgres_server_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(postgres_server_url, name)
    try:
        _migrate(url)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            # FORCE: a worker killed by a test may have left connections behind.
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """SQLAlchemy URL of a fresh, migrated SQLite file in the test's temporary directory."""
    url = f"sqlite:///{tmp_path / 'undertone.db'}"
    _migrate(url)
    return url


# ------------------------------------------------------------------------ analysis environment


@pytest.fixture(scope="session")
def offline_env() -> dict[str, str]:
    """Environment for subprocesses that load models: never reach a model hub."""
    env = dict(os.environ)
    env.update(
        {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    )
    # The test session's own UNDERTONE_* settings must not leak into servers it starts.
    for key in list(env):
        if key.startswith("UNDERTONE_") and not key.startswith("UNDERTONE_TEST_"):
            del env[key]
    return env


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def model_artifacts_dir() -> Path:
    """The built model artifacts (ONNX encoder, joined Whisper base) of this checkout.

    The same directory `make run` uses (``var/models``); built here when missing, which is
    a no-op when `undertone models setup` already ran.
    """
    from models.assemble import setup_models
    from service.config import ModelSettings

    directory = REPO_ROOT / "var" / "models"
    setup_models(ModelSettings(), directory)
    return directory
