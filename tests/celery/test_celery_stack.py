"""The docker-compose.yaml stack without Docker: real scheduler, real Celery worker.

The module starts PostgreSQL and Redis from Debian's packages on 127.0.0.1, runs
airflow-init's script, then the api-server, scheduler, dag-processor, triggerer
and one Celery worker with the environment and commands that docker-compose.yaml
gives them. Only host names, ports and container paths are replaced, and servers
that would listen on every interface are bound to 127.0.0.1 or not started.
The test triggers the nightly DAG through the REST API with a JWT, as a user
would, then checks the outputs and that the tasks ran on the Celery worker.

Run it alone with ``pytest -m celery -rP`` to see the run's key log lines.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.celery, pytest.mark.slow]

COMPOSE_FILE = REPO / "docker-compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
DAG_ID = "metaguard_nightly_scoring"
DAG_TASKS = {"locate", "validate", "chunks_of", "score", "publish"}
FIRST_DAY = dt.date(2024, 1, 1)
SIMULATED_DAYS = 8
TRAIN_END = FIRST_DAY + dt.timedelta(days=6)
RUN_DATE = FIRST_DAY + dt.timedelta(days=SIMULATED_DAYS - 1)

# Started in this order, after PostgreSQL and Redis.
AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
)
# Flags added to the compose commands: the api-server listens on loopback, and
# the log servers (which bind every interface) stay off because every process
# here shares one log folder.
TEST_FLAGS = {
    "airflow-apiserver": ["--host", "127.0.0.1"],
    "airflow-scheduler": ["--skip-serve-logs"],
    "airflow-triggerer": ["--skip-serve-logs"],
    "airflow-worker": ["--skip-serve-logs"],
}
# .env.example placeholders that the test replaces with random values.
SECRET_VARIABLES = (
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
    "AIRFLOW_API_SECRET_KEY",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_ADMIN_PASSWORD",
)
# Text that must not survive the translation from containers to this machine.
CONTAINER_REFERENCES = (
    "@postgres:",
    "@redis:",
    "airflow-apiserver:",
    "localhost:",
    "/opt/",
)

# Timeouts in seconds.
COMMAND_TIMEOUT = 300
SERVER_TIMEOUT = 60
STARTUP_TIMEOUT = 180
PARSE_TIMEOUT = 180
RUN_TIMEOUT = 360
STOP_TIMEOUT = 30
HEALTHCHECK_TIMEOUT = 120

_T = TypeVar("_T")
# The Celery worker's line for each task: the Celery task id, then the TI id.
_WORKLOAD = re.compile(
    r"\[(?P<celery_id>[0-9a-f-]{36})\] Executing workload in Celery: "
    r".*?ti=TaskInstanceDTO\(id=UUID\('(?P<ti_id>[0-9a-f-]{36})'\)"
)
# Shortens the worker's workload lines to the task they run.
_LOG_PATH = re.compile(
    r"dag_rel_path=.*?log_path='[^']*?/task_id=(?P<task>[^/']+(?:/map_index=\d+)?)/[^']*'"
)
_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
)


# --- docker-compose.yaml ---------------------------------------------------------


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines of an env file, skipping blank lines and comments."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Substitute ``$$``, ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?error}``.

    Follows docker-compose: the forms with a colon treat an empty value as unset.
    Raises KeyError naming the variable when a required one is missing.
    """

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name", "op", "arg")
        value = variables.get(name)
        missing = value is None or (value == "" and op is not None and op[0] == ":")
        if op in ("-", ":-"):
            return arg if missing else value
        if op in ("?", ":?"):
            if missing:
                raise KeyError(f"{name} is required: {arg}")
            return value
        return value or ""

    return _INTERPOLATION.sub(substitute, text)


@dataclass
class ComposeTranslation:
    """The compose file's values with container names and paths mapped to this host."""

    compose: dict
    variables: dict[str, str]
    replacements: list[tuple[str, str]]

    def text(self, value: object) -> str:
        """Interpolate one value and replace every container reference in it."""
        text = interpolate("" if value is None else str(value), self.variables)
        for old, new in self.replacements:
            text = text.replace(old, new)
        leftovers = [ref for ref in CONTAINER_REFERENCES if ref in text]
        assert not leftovers, (
            f"{text!r} still refers to {leftovers}; map it in the test's replacements"
        )
        return text

    def service(self, name: str) -> dict:
        """Return a service's definition from docker-compose.yaml."""
        return self.compose["services"][name]

    def environment(self, name: str) -> dict[str, str]:
        """Return a service's environment, translated."""
        raw = self.service(name).get("environment") or {}
        return {key: self.text(value) for key, value in raw.items()}

    def command(self, name: str) -> list[str]:
        """Return a service's command as an argument list, translated."""
        return [self.text(part) for part in self.service(name)["command"]]

    def healthcheck(self, name: str) -> list[str]:
        """Return a service's health check as an argument list, translated."""
        test = [self.text(part) for part in self.service(name)["healthcheck"]["test"]]
        if test[0] == "CMD-SHELL":
            return ["sh", "-c", test[1]]
        assert test[0] == "CMD", f"unsupported health check form {test[0]!r} in {name}"
        return test[1:]


# --- processes -------------------------------------------------------------------


class Processes:
    """Child processes, each in its own process group and logging to its own file."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.running: dict[str, subprocess.Popen] = {}
        self.stop_signals: dict[str, signal.Signals] = {}

    def log_path(self, name: str) -> Path:
        """Return the file that a process writes its output to."""
        return self.log_dir / f"{name}.log"

    def start(
        self,
        name: str,
        args: list[str],
        env: Mapping[str, str],
        stop_signal: signal.Signals = signal.SIGTERM,
        **popen_args,
    ) -> subprocess.Popen:
        """Start a process in a new session with output going to its log file."""
        with self.log_path(name).open("wb") as log:
            process = subprocess.Popen(
                args,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **popen_args,
            )
        self.running[name] = process
        self.stop_signals[name] = stop_signal
        return process

    def tail(self, name: str, lines: int = 40) -> str:
        """Return the last lines of a process's log."""
        path = self.log_path(name)
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def tails(self, lines: int = 25) -> str:
        """Return the last lines of every process's log, each under its name."""
        return "\n".join(
            f"--- {name} ---\n{self.tail(name, lines)}" for name in self.running
        )

    def check_running(self) -> None:
        """Fail with the process's log when any process has exited."""
        for name, process in self.running.items():
            if process.poll() is not None:
                pytest.fail(
                    f"{name} exited with code {process.returncode}:\n{self.tail(name)}"
                )

    def stop(self, names: Iterable[str]) -> None:
        """Signal the named process groups together, wait, then kill what is left."""
        names = [name for name in names if name in self.running]
        for name in names:
            _signal_group(self.running[name], self.stop_signals[name])
        for name in names:
            process = self.running.pop(name)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop within {STOP_TIMEOUT} s; killing it")
            # Also ends children that outlived their group leader.
            _signal_group(process, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)

    def stop_all(self) -> None:
        """Stop every process that is still running, the latest started first."""
        for name in reversed(list(self.running)):
            self.stop([name])


def _signal_group(process: subprocess.Popen, sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def wait_for(
    check: Callable[[], _T | None],
    description: str,
    timeout: float,
    processes: Processes,
    interval: float = 1.0,
) -> _T:
    """Call ``check`` until it returns a true value, failing after ``timeout`` s.

    Fails at once when one of the processes has exited.
    """
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 1):
        result = check()
        if result:
            return result
        processes.check_running()
        if time.monotonic() > deadline:
            break
        time.sleep(interval)
    tails = processes.tails()
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {description}\n{tails}")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- PostgreSQL and Redis ----------------------------------------------------------


def find_program(name: str) -> str | None:
    """Return the path of a program on PATH or in Debian's PostgreSQL folders."""
    found = shutil.which(name)
    if found:
        return found
    candidates = [
        path
        for path in Path("/usr/lib/postgresql").glob(f"*/bin/{name}")
        if path.parts[-3].isdigit()
    ]
    candidates.sort(key=lambda path: int(path.parts[-3]))
    return str(candidates[-1]) if candidates else None


def required_programs() -> dict[str, str]:
    """Return the server programs, skipping the test (failing it in CI) when absent.

    The Python packages that the stack needs are checked too.
    """
    programs = {
        name: find_program(name) for name in ("initdb", "postgres", "redis-server")
    }
    problems = []
    missing = sorted(name for name, path in programs.items() if path is None)
    if missing:
        problems.append(
            f"{', '.join(missing)} not found; install Debian's packages with "
            "`apt-get install -y postgresql redis-server`"
        )
    modules = ("airflow.providers.celery", "psycopg2", "asyncpg", "redis")
    absent = [module for module in modules if importlib.util.find_spec(module) is None]
    if absent:
        problems.append(
            f"Python modules {', '.join(absent)} not found; run `make install`"
        )
    if problems:
        message = "; ".join(problems) + " to run the Celery stack test"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (required because CI=true)")
        pytest.skip(message)
    return programs


def postgres_account() -> dict:
    """Return Popen arguments that run PostgreSQL as a non-root user.

    PostgreSQL refuses to start as root, so a root test runs it as the
    ``postgres`` user that Debian's package creates.
    """
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running as root needs the 'postgres' user; install postgresql")
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def start_postgres(
    processes: Processes,
    programs: dict[str, str],
    data_root: Path,
    user: str,
    password: str,
) -> int:
    """Create a cluster in ``data_root``, start it on 127.0.0.1 and return its port."""
    account = postgres_account()
    password_file = data_root / "password"
    password_file.write_text(password + "\n")
    if account:
        os.chown(data_root, account["user"], account["group"])
        os.chown(password_file, account["user"], account["group"])
    data = data_root / "data"
    init = subprocess.run(
        [
            programs["initdb"],
            "-D",
            str(data),
            "-U",
            user,
            "--pwfile",
            str(password_file),
            "-A",
            "scram-sha-256",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ],
        cwd=data_root,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        **account,
    )
    assert init.returncode == 0, f"initdb failed:\n{init.stdout}\n{init.stderr}"
    port = free_port()
    processes.start(
        "postgres",
        [
            programs["postgres"],
            "-D",
            str(data),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"port={port}",
            "-c",
            "unix_socket_directories=",
            "-c",
            "fsync=off",
        ],
        env={"PATH": os.environ.get("PATH", ""), "LC_ALL": "C"},
        stop_signal=signal.SIGINT,
        cwd=data_root,
        **account,
    )
    return port


def postgres_connection(port: int, user: str, password: str, database: str):
    """Open a psycopg2 connection to the test's server, or return None if it fails."""
    import psycopg2

    try:
        return psycopg2.connect(
            host="127.0.0.1",
            port=port,
            user=user,
            password=password,
            dbname=database,
            connect_timeout=3,
        )
    except psycopg2.OperationalError:
        return None


def create_database(port: int, user: str, password: str, database: str) -> None:
    """Create the Airflow database, as the postgres image does for POSTGRES_DB."""
    from psycopg2 import sql

    connection = postgres_connection(port, user, password, "postgres")
    assert connection is not None, "PostgreSQL accepted no connection"
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(
                sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database))
            )
    finally:
        connection.close()


def start_redis(processes: Processes, program: str, folder: Path, password: str) -> int:
    """Start Redis on 127.0.0.1 without persistence and return its port."""
    port = free_port()
    processes.start(
        "redis",
        [
            program,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            password,
            "--dir",
            str(folder),
        ],
        env={"PATH": os.environ.get("PATH", "")},
    )
    return port


def redis_ready(port: int, password: str) -> bool:
    """Return whether Redis replies to PING."""
    import redis

    client = redis.Redis(
        host="127.0.0.1", port=port, password=password, socket_timeout=2
    )
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


# --- MetaGuard data ------------------------------------------------------------------


def build_warehouse_and_model(warehouse: Path, output: Path, models: Path) -> str:
    """Simulate a small warehouse, train a champion on its first week, return it."""
    from metaguard import registry
    from metaguard.config import load_settings
    from metaguard.simulate import simulate_warehouse
    from metaguard.training import train, windows_from_training

    simulate_warehouse(
        warehouse, days=SIMULATED_DAYS, start=FIRST_DAY, transactions_per_day=1000
    )
    settings = load_settings(
        {},
        overrides={
            "warehouse": str(warehouse),
            "output": str(output),
            "models": str(models),
        },
    )
    gx_logger = logging.getLogger("great_expectations")
    gx_level = gx_logger.level
    gx_logger.setLevel(logging.WARNING)
    try:
        decision = train(
            settings,
            windows_from_training(FIRST_DAY, TRAIN_END),
            estimator="logistic_regression",
            seed=0,
            require_validation=False,
        )
    finally:
        gx_logger.setLevel(gx_level)
    assert decision["promoted"], decision
    return registry.champion_version(models)


# --- the stack -----------------------------------------------------------------------


@dataclass
class Stack:
    """A running stack: where it listens, its credentials and its folders."""

    api_url: str
    admin_user: str
    admin_password: str
    warehouse: Path
    output: Path
    champion: str
    processes: Processes
    translation: ComposeTranslation
    database: dict[str, object]
    environments: dict[str, dict[str, str]] = field(default_factory=dict)

    def token(self) -> str:
        """Request a JWT from /auth/token with the admin's user name and password."""
        import httpx

        response = httpx.post(
            f"{self.api_url}/auth/token",
            json={"username": self.admin_user, "password": self.admin_password},
            timeout=30,
        )
        assert response.status_code == 201, f"/auth/token: {response.text}"
        return response.json()["access_token"]

    def client(self):
        """Return an httpx client for /api/v2 that sends a bearer token."""
        import httpx

        return httpx.Client(
            base_url=f"{self.api_url}/api/v2",
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=30,
        )


def _api_healthy(api_url: str) -> bool:
    import httpx

    try:
        return (
            httpx.get(f"{api_url}/api/v2/monitor/health", timeout=5).status_code == 200
        )
    except httpx.HTTPError:
        return False


def _child_environment(airflow_home: Path) -> dict[str, str]:
    """Return this process's environment without Airflow and MetaGuard settings.

    The Docker image sets AIRFLOW_HOME and puts its virtualenv first on PATH,
    so the test does the same with the running interpreter's virtualenv.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW_", "AIRFLOW__", "METAGUARD_"))
    }
    env["PATH"] = os.pathsep.join(
        [str(Path(sys.executable).parent), env.get("PATH", "")]
    )
    env["AIRFLOW_HOME"] = str(airflow_home)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _run_airflow_init(translation: ComposeTranslation, base_env: dict[str, str]) -> str:
    """Run airflow-init's script and return the last line that it printed."""
    env = {**base_env, **translation.environment("airflow-init")}
    init = subprocess.Popen(
        translation.command("airflow-init"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = init.communicate(timeout=COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        _signal_group(init, signal.SIGKILL)
        output, _ = init.communicate()
        pytest.fail(f"airflow-init timed out after {COMMAND_TIMEOUT} s:\n{output}")
    output = output.strip()
    assert init.returncode == 0, f"airflow-init failed:\n{output[-4000:]}"
    return output.splitlines()[-1]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """Start the whole stack once for this module and stop it afterwards."""
    programs = required_programs()
    import yaml
    from cryptography.fernet import Fernet

    variables = read_dotenv(ENV_EXAMPLE)
    for name in SECRET_VARIABLES:
        variables[name] = secrets.token_urlsafe(24)
    variables["AIRFLOW_FERNET_KEY"] = Fernet.generate_key().decode()
    placeholders = sorted(k for k, v in variables.items() if "change-me" in v)
    assert not placeholders, f"the test sets no value for {placeholders}"

    root = Path(tempfile.mkdtemp(prefix="metaguard-celery-"))
    data_root = Path(tempfile.mkdtemp(prefix="metaguard-postgres-"))
    processes = Processes(root / "logs")
    try:
        yield _start_stack(
            programs,
            variables,
            yaml.safe_load(COMPOSE_FILE.read_text()),
            root,
            data_root,
            processes,
        )
    finally:
        # The Airflow services first, so they can still reach the database
        # and the broker while they shut down.
        processes.stop(AIRFLOW_SERVICES)
        processes.stop_all()
        shutil.rmtree(data_root, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


def _start_stack(
    programs: dict[str, str],
    variables: dict[str, str],
    compose: dict,
    root: Path,
    data_root: Path,
    processes: Processes,
) -> Stack:
    """Start the servers, run airflow-init, start the Airflow services."""
    began = time.monotonic()
    database = {
        "user": variables["POSTGRES_USER"],
        "password": variables["POSTGRES_PASSWORD"],
        "database": variables["POSTGRES_DB"],
    }
    database["port"] = start_postgres(
        processes, programs, data_root, database["user"], database["password"]
    )
    (root / "redis").mkdir()
    redis_port = start_redis(
        processes, programs["redis-server"], root / "redis", variables["REDIS_PASSWORD"]
    )

    warehouse, output, models = root / "warehouse", root / "output", root / "models"
    champion = build_warehouse_and_model(warehouse, output, models)

    wait_for(
        lambda: _close(
            postgres_connection(
                database["port"], database["user"], database["password"], "postgres"
            )
        ),
        "PostgreSQL",
        SERVER_TIMEOUT,
        processes,
    )
    create_database(
        database["port"], database["user"], database["password"], database["database"]
    )
    wait_for(
        lambda: redis_ready(redis_port, variables["REDIS_PASSWORD"]),
        "Redis",
        SERVER_TIMEOUT,
        processes,
    )

    api_port, health_port = free_port(), free_port()
    translation = ComposeTranslation(
        compose=compose,
        variables=variables,
        replacements=[
            ("@postgres:5432/", f"@127.0.0.1:{database['port']}/"),
            ("@redis:6379/", f"@127.0.0.1:{redis_port}/"),
            ("http://airflow-apiserver:8080/", f"http://127.0.0.1:{api_port}/"),
            ("http://localhost:8080/", f"http://127.0.0.1:{api_port}/"),
            ("http://localhost:8974/", f"http://127.0.0.1:{health_port}/"),
            ("/opt/airflow/dags", str(REPO / "dags")),
            ("/opt/airflow/plugins", str(REPO / "plugins")),
            ("/opt/airflow/secrets", str(root / "secrets")),
            ("/opt/metaguard/warehouse", str(warehouse)),
            ("/opt/metaguard/output", str(output)),
            ("/opt/metaguard/models", str(models)),
        ],
    )
    base_env = _child_environment(root / "airflow_home")
    print("airflow-init:", _run_airflow_init(translation, base_env))

    test_only = {
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(health_port),
    }
    flags = {**TEST_FLAGS}
    flags["airflow-apiserver"] = [
        *TEST_FLAGS["airflow-apiserver"],
        "--port",
        str(api_port),
    ]
    environments = {}
    for name in AIRFLOW_SERVICES:
        environments[name] = {**base_env, **translation.environment(name), **test_only}
        processes.start(
            name, translation.command(name) + flags.get(name, []), environments[name]
        )

    api_url = f"http://127.0.0.1:{api_port}"
    wait_for(
        lambda: _api_healthy(api_url), "the api-server", STARTUP_TIMEOUT, processes
    )
    elapsed = time.monotonic() - began
    print(f"stack started in {elapsed:.0f} s; logs in {processes.log_dir}")
    return Stack(
        api_url=api_url,
        admin_user=variables["AIRFLOW_ADMIN_USER"],
        admin_password=variables["AIRFLOW_ADMIN_PASSWORD"],
        warehouse=warehouse,
        output=output,
        champion=champion,
        processes=processes,
        translation=translation,
        database=database,
        environments=environments,
    )


def _close(connection) -> bool:
    if connection is None:
        return False
    connection.close()
    return True


# --- helpers for the checks -----------------------------------------------------------


def dag_parsed(client) -> bool:
    """Return whether the DAG is stored, failing at once on its import error."""
    if client.get(f"/dags/{DAG_ID}").status_code == 200:
        return True
    response = client.get("/importErrors")
    assert response.status_code == 200, response.text
    for error in response.json()["import_errors"]:
        if error["filename"].endswith(f"{DAG_ID}.py"):
            pytest.fail(f"{DAG_ID} failed to import:\n{error['stack_trace']}")
    return False


def trigger_run(client, date: dt.date) -> str:
    """Trigger the nightly DAG for ``date`` and return the run id."""
    response = client.post(
        f"/dags/{DAG_ID}/dagRuns",
        json={
            "logical_date": f"{date.isoformat()}T00:00:00Z",
            "conf": {"date": date.isoformat()},
        },
    )
    assert response.status_code == 200, f"trigger failed: {response.text}"
    return response.json()["dag_run_id"]


def run_state(client, run_id: str) -> str | None:
    """Return the run's state once it has finished, else None."""
    response = client.get(f"/dags/{DAG_ID}/dagRuns/{run_id}")
    assert response.status_code == 200, response.text
    state = response.json()["state"]
    return state if state in ("success", "failed") else None


def task_instances(client, run_id: str) -> list[dict]:
    """Return the run's task instances, mapped ones included."""
    response = client.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")
    assert response.status_code == 200, response.text
    return response.json()["task_instances"]


def task_log(client, run_id: str, ti: dict) -> list[dict]:
    """Return a task instance's structured log entries from the REST API."""
    response = client.get(
        f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{ti['task_id']}"
        f"/logs/{ti['try_number']}",
        params={"map_index": ti["map_index"], "full_content": "true"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 200, response.text
    content = response.json()["content"]
    return [entry for entry in content if isinstance(entry, dict)]


def key_log_lines(entries: list[dict]) -> list[str]:
    """Select MetaGuard's own lines and every warning or error from a task log."""
    lines = []
    for entry in entries:
        logger = str(entry.get("logger", ""))
        level = str(entry.get("level", "")).lower()
        if logger.startswith("metaguard") or level in ("warning", "error", "critical"):
            lines.append(
                f"{entry.get('timestamp', '')} {level} {logger}: {entry['event']}"
            )
    return lines


def print_task_logs(client, run_id: str, tis: list[dict]) -> None:
    """Print each task instance's fields and the key lines of its log."""
    for ti in sorted(tis, key=lambda t: (t["start_date"] or "", t["map_index"])):
        print(
            f"--- {ti['task_id']} map_index={ti['map_index']} state={ti['state']} "
            f"try={ti['try_number']} queue={ti['queue']} hostname={ti['hostname']} "
            f"pid={ti['pid']}"
        )
        if ti["try_number"] > 0:
            for line in key_log_lines(task_log(client, run_id, ti)):
                print("   ", line)


def print_run_logs(stack: Stack, client, run_id: str, tis: list[dict]) -> None:
    """Print the key lines of every task log and the worker's lines for the run."""
    print(f"\n=== run {run_id} ===")
    print_task_logs(client, run_id, tis)
    print("--- airflow-worker (Celery) ---")
    worker_log = stack.processes.log_path("airflow-worker").read_text(errors="replace")
    celery_ids = celery_task_ids(worker_log)
    run_celery_ids = {celery_ids[ti["id"]] for ti in tis if ti["id"] in celery_ids}
    for line in worker_log.splitlines():
        if "celery@" in line or any(celery_id in line for celery_id in run_celery_ids):
            print("   ", _LOG_PATH.sub(r"task \g<task>", line).split(" ti=")[0][:240])


def print_other_runs(stack: Stack, client, run_id: str) -> None:
    """Wait for the DAG's other runs to finish and print their task logs.

    Unpausing the DAG makes the scheduler create a run for the last complete
    interval, whose partition the simulated warehouse does not have.
    """
    response = client.get(f"/dags/{DAG_ID}/dagRuns")
    assert response.status_code == 200, response.text
    for run in response.json()["dag_runs"]:
        other = run["dag_run_id"]
        if other == run_id:
            continue
        state = wait_for(
            lambda other=other: run_state(client, other),
            f"run {other}",
            RUN_TIMEOUT,
            stack.processes,
            interval=2.0,
        )
        print(f"\n=== {run['run_type']} run {other}: {state} ===")
        print_task_logs(client, other, task_instances(client, other))


def celery_task_ids(worker_log: str) -> dict[str, str]:
    """Map task instance ids to the Celery task ids that the worker logged for them."""
    return {
        match.group("ti_id"): match.group("celery_id")
        for match in _WORKLOAD.finditer(worker_log)
    }


def celery_states(
    database: Mapping[str, object], celery_ids: list[str]
) -> dict[str, str]:
    """Return the Celery result backend's status of each given Celery task id."""
    connection = postgres_connection(
        database["port"], database["user"], database["password"], database["database"]
    )
    assert connection is not None, "the result backend database accepted no connection"
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT task_id, status FROM celery_taskmeta WHERE task_id = ANY(%s)",
                (celery_ids,),
            )
            return dict(cursor.fetchall())
    finally:
        connection.close()


# --- tests ------------------------------------------------------------------------


def test_api_rejects_bad_credentials(stack):
    import httpx

    anonymous = httpx.get(f"{stack.api_url}/api/v2/dags", timeout=30)
    wrong = httpx.post(
        f"{stack.api_url}/auth/token",
        json={"username": stack.admin_user, "password": "not-the-password"},
        timeout=30,
    )
    assert anonymous.status_code == 401
    assert wrong.status_code == 401


def test_nightly_run_on_celery_worker(stack):
    import pyarrow.parquet as pq

    began = time.monotonic()
    with stack.client() as client:
        wait_for(
            lambda: dag_parsed(client),
            f"the dag-processor to parse {DAG_ID}",
            PARSE_TIMEOUT,
            stack.processes,
        )
        # Trigger while paused, so this run is queued before the scheduled run
        # that unpausing creates (catchup=False still schedules the last interval).
        run_id = trigger_run(client, RUN_DATE)
        unpause = client.patch(f"/dags/{DAG_ID}", json={"is_paused": False})
        assert unpause.status_code == 200, unpause.text
        state = wait_for(
            lambda: run_state(client, run_id),
            f"run {run_id}",
            RUN_TIMEOUT,
            stack.processes,
            interval=2.0,
        )
        tis = task_instances(client, run_id)
        print_run_logs(stack, client, run_id, tis)
        print_other_runs(stack, client, run_id)
    print(f"run {run_id} finished as {state} in {time.monotonic() - began:.0f} s")

    assert state == "success", stack.processes.tails()
    by_task: dict[str, list[dict]] = {}
    for ti in tis:
        by_task.setdefault(ti["task_id"], []).append(ti)
    assert set(by_task) == DAG_TASKS
    assert {ti["state"] for ti in tis} == {"success"}

    scores = by_task["score"]
    worker_log = stack.processes.log_path("airflow-worker").read_text(errors="replace")
    assert scores
    for ti in scores:
        assert ti["map_index"] >= 0
        assert ti["queue"] == "default"
        assert ti["hostname"]
    celery_ids = celery_task_ids(worker_log)
    for ti in tis:
        assert ti["id"] in celery_ids, (
            f"{ti['task_id']} did not run on the Celery worker"
        )
    # The worker stores a result after the task process exits, which can be
    # after the API already reports the run as finished.
    run_celery_ids = [celery_ids[ti["id"]] for ti in tis]
    wait_for(
        lambda: (
            set(celery_states(stack.database, run_celery_ids).values()) == {"SUCCESS"}
        ),
        "SUCCESS in the Celery result backend",
        SERVER_TIMEOUT,
        stack.processes,
    )

    day = RUN_DATE.isoformat()
    report = pq.read_table(stack.output / f"risk_reports/dt={day}/part-00000.parquet")
    summary = json.loads((stack.output / f"runs/dt={day}/summary.json").read_text())
    partition = pq.read_table(stack.warehouse / f"transactions/dt={day}")
    print("summary.json:", json.dumps(summary, default=str))
    assert summary["rows_in"] == partition.num_rows
    assert summary["rows_in"] == summary["scored"] + summary["quarantined"]
    assert summary["scored"] > 0
    assert report.num_rows == summary["scored"]
    assert summary["model_version"] == stack.champion
    assert set(report.column("model_version").to_pylist()) == {stack.champion}
    scores_column = report.column("risk_score").to_numpy()
    assert scores_column.min() >= 0.0
    assert scores_column.max() <= 1.0


def test_compose_healthchecks_pass(stack):
    hostname = socket.gethostname()
    checks = {}
    for name in AIRFLOW_SERVICES:
        env = {**stack.environments[name], "HOSTNAME": hostname}
        checks[name] = subprocess.Popen(
            stack.translation.healthcheck(name),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    results = {}
    for name, check in checks.items():
        try:
            output, _ = check.communicate(timeout=HEALTHCHECK_TIMEOUT)
        except subprocess.TimeoutExpired:
            _signal_group(check, signal.SIGKILL)
            output, _ = check.communicate()
        results[name] = (check.returncode, output.strip().splitlines()[-1:])
        print(f"health check {name}: exit {check.returncode} {results[name][1]}")
    for name, (code, output) in results.items():
        assert code == 0, f"{name} health check failed: {output}"
