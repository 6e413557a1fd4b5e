"""Database fixtures: every storage test runs against SQLite and PostgreSQL.

PostgreSQL: uniquely named throw-away databases (refundbot_test_<pid>_<random>_<n>) on the server
at REFUNDBOT_TEST_POSTGRES (default postgresql://postgres@127.0.0.1:5432/test, used only as the
maintenance connection), dropped when done. Unreachable -> skipped with the reason, unless
REFUNDBOT_REQUIRE_POSTGRES=1 (CI): then failed.

Redis (the shared send-rate limits): the server at REFUNDBOT_TEST_REDIS (default
redis://127.0.0.1:6379/0); tests keep to keys under a prefix of their own. Unreachable -> skipped with
the reason, unless REFUNDBOT_REQUIRE_REDIS=1 (CI): then failed.

MySQL / MariaDB (the card shops' own databases, tests/shops/): throw-away databases named
refundbot_shop_<pid>_<random>_<n> on the server at REFUNDBOT_TEST_MYSQL (default
mysql://root@127.0.0.1:3306/test), one per test module, dropped when done. Unreachable -> skipped with
the reason, unless REFUNDBOT_REQUIRE_MYSQL=1 (CI): then failed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:  # storage and SQLAlchemy load only in tests that ask for a database: tests/dialogs needs neither
    from storage.uow import Database

T = TypeVar("T")

POSTGRES_ADMIN_URL = os.environ.get("REFUNDBOT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("REFUNDBOT_TEST_REDIS", "redis://127.0.0.1:6379/0")
MYSQL_ADMIN_URL = os.environ.get("REFUNDBOT_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")


def _run_in_thread(coro_factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    # A private loop in a private thread: sync fixtures must not disturb pytest-asyncio's loops.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(coro_factory())).result()


class PostgresDatabases:
    """Creates throw-away databases named refundbot_test_<pid>_<random>_<n> and drops them."""

    def __init__(self, admin_url: str) -> None:
        from sqlalchemy.engine import make_url

        self._admin = make_url(admin_url)
        self._prefix = f"refundbot_test_{os.getpid()}_{secrets.token_hex(3)}"
        self._counter = itertools.count(1)

    async def _execute(self, *statements: str, database: str | None = None) -> None:
        import asyncpg

        connection = await asyncpg.connect(
            host=self._admin.host,
            port=self._admin.port or 5432,
            user=self._admin.username,
            password=self._admin.password,
            database=database or self._admin.database,
            timeout=5,
        )
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    def ping(self) -> None:
        _run_in_thread(lambda: self._execute("SELECT 1"))

    def create(self) -> tuple[str, str]:
        name = f"{self._prefix}_{next(self._counter)}"
        _run_in_thread(lambda: self._execute(f'CREATE DATABASE "{name}" TEMPLATE template0'))
        url = self._admin.set(drivername="postgresql", database=name)
        return name, url.render_as_string(hide_password=False)

    def truncate(self, name: str, tables: list[str]) -> None:
        quoted = ", ".join(f'"{table}"' for table in tables)
        # lock_timeout: a connection leaked by an earlier test fails this loudly instead of hanging.
        statements = ("SET lock_timeout = '5s'", f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")
        _run_in_thread(lambda: self._execute(*statements, database=name))

    def drop(self, name: str) -> None:
        # FORCE: a test that leaked a connection must not leave the database behind.
        _run_in_thread(lambda: self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_databases() -> PostgresDatabases:
    databases = PostgresDatabases(POSTGRES_ADMIN_URL)
    try:
        databases.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no usable server"
        from sqlalchemy.engine import make_url

        shown = make_url(POSTGRES_ADMIN_URL).render_as_string(hide_password=True)
        message = f"PostgreSQL not reachable at {shown}: {exc!r}"
        if os.environ.get("REFUNDBOT_REQUIRE_POSTGRES") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return databases


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The URL of a reachable Redis server (see the module's docstring)."""

    async def ping() -> None:
        from redis.asyncio import Redis

        client = Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        try:
            await client.ping()
        finally:
            await client.aclose()

    try:
        _run_in_thread(ping)
    except Exception as exc:  # noqa: BLE001 - any failure means "no usable server"
        message = f"Redis not reachable at {REDIS_URL}: {exc!r}"
        if os.environ.get("REFUNDBOT_REQUIRE_REDIS") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return REDIS_URL


class MysqlDatabases:
    """Creates throw-away MySQL / MariaDB databases named refundbot_shop_<pid>_<random>_<n> and drops them
    (PyMySQL, blocking: a few statements per test module)."""

    def __init__(self, admin_url: str) -> None:
        from sqlalchemy.engine import make_url

        self._admin = make_url(admin_url)
        self._prefix = f"refundbot_shop_{os.getpid()}_{secrets.token_hex(3)}"
        self._counter = itertools.count(1)

    def connect(self, database: str | None = None) -> Any:
        import pymysql

        return pymysql.connect(host=self._admin.host or "127.0.0.1", port=self._admin.port or 3306,
                               user=self._admin.username or "root", password=self._admin.password or "",
                               database=database, charset="utf8mb4", connect_timeout=5, autocommit=True)

    def ping(self) -> None:
        self.connect().close()

    def create(self) -> tuple[str, str]:
        name = f"{self._prefix}_{next(self._counter)}"
        connection = self.connect()
        try:
            connection.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        finally:
            connection.close()
        url = self._admin.set(drivername="mysql+aiomysql", database=name)
        return name, url.render_as_string(hide_password=False)

    def drop(self, name: str) -> None:
        connection = self.connect()
        try:
            connection.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            connection.close()


@pytest.fixture(scope="session")
def mysql_databases() -> MysqlDatabases:
    databases = MysqlDatabases(MYSQL_ADMIN_URL)
    try:
        databases.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no usable server"
        from sqlalchemy.engine import make_url

        shown = make_url(MYSQL_ADMIN_URL).render_as_string(hide_password=True)
        message = f"MySQL / MariaDB not reachable at {shown}: {exc!r}"
        if os.environ.get("REFUNDBOT_REQUIRE_MYSQL") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return databases


@pytest.fixture(scope="module")
def mysql_url(mysql_databases: MysqlDatabases) -> Iterator[str]:
    """A fresh, empty MySQL / MariaDB database for this test module (mysql+aiomysql://...)."""
    name, url = mysql_databases.create()
    try:
        yield url
    finally:
        mysql_databases.drop(name)


@pytest.fixture(params=[pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """'sqlite' or 'postgres'; parametrizes every test that uses a database fixture."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, empty database (not migrated)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'refundbot.db'}"
        return
    databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
    name, url = databases.create()
    try:
        yield url
    finally:
        databases.drop(name)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from storage import migrate

    path = tmp_path_factory.mktemp("template") / "refundbot.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def fresh_sqlite_databases(_sqlite_template: Path, tmp_path: Path) -> Callable[[], str]:
    """For property tests: each call gives a new migrated, empty SQLite database (a copy of the template)."""
    copies = itertools.count(1)

    def new_database() -> str:
        path = tmp_path / f"world-{next(copies)}.db"
        shutil.copyfile(_sqlite_template, path)
        return f"sqlite:///{path}"

    return new_database


@pytest.fixture
def fresh_postgres_database(postgres_databases: PostgresDatabases,
                            _postgres_migrated: tuple[str, str]) -> Callable[[], str]:
    """For property tests: each call empties the session's migrated PostgreSQL database and gives its URL."""
    from storage.models import Base

    name, url = _postgres_migrated
    tables = [table.name for table in Base.metadata.sorted_tables]

    def new_database() -> str:
        postgres_databases.truncate(name, tables)
        return url

    return new_database


@pytest.fixture(scope="session")
def _postgres_migrated(postgres_databases: PostgresDatabases) -> Iterator[tuple[str, str]]:
    from storage import migrate

    name, url = postgres_databases.create()
    try:
        migrate.upgrade(url)
        yield name, url
    finally:
        postgres_databases.drop(name)


@pytest.fixture
def migrated_database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh database at the head revision.

    It is the test's `database_url` (migrated) when the test also uses that fixture. Otherwise,
    for speed, the database was migrated once per session: SQLite gets a copy of it, PostgreSQL
    the same database with every table truncated (CREATE DATABASE or a migration costs ~0.1-0.3 s
    each, with fsync on).
    """
    from storage import migrate
    from storage.models import Base

    if "database_url" in request.fixturenames:
        url: str = request.getfixturevalue("database_url")
        migrate.upgrade(url)
        yield url
    elif backend == "sqlite":
        template: Path = request.getfixturevalue("_sqlite_template")
        path = tmp_path / "refundbot.db"
        shutil.copyfile(template, path)  # the last connection's close checkpointed the WAL
        yield f"sqlite:///{path}"
    else:
        databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
        name, url = request.getfixturevalue("_postgres_migrated")
        databases.truncate(name, [table.name for table in Base.metadata.sorted_tables])
        yield url


@pytest.fixture
async def database(migrated_database_url: str) -> AsyncIterator[Database]:
    """A migrated database (same database as `database_url` if the test uses both), disposed
    after the test."""
    from storage.uow import Database

    db = Database.from_url(migrated_database_url)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, its handlers and level put back afterwards (configure_logging and `run` change
    them)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield root
    finally:
        root.handlers[:], root.level = handlers, level
