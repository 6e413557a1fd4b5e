"""Loading a card shop's tables and rows into a MariaDB test database (tests/conftest.py mysql_url)."""

from __future__ import annotations

import socket
from pathlib import Path

from sqlalchemy.engine import make_url

HERE = Path(__file__).parent


def run_sql(url: str, *files: str, prefix: str = "") -> None:
    """Execute the statements of `files` (in tests/shops/, `;`-separated, `--` comments) with __PREFIX__
    replaced by the table prefix."""
    import pymysql

    parsed = make_url(url)
    connection = pymysql.connect(host=parsed.host, port=parsed.port or 3306, user=parsed.username,
                                 password=parsed.password or "", database=parsed.database, charset="utf8mb4",
                                 autocommit=True)
    try:
        cursor = connection.cursor()
        # The shops' PHP writes local times into TIMESTAMP columns through a session in the server's zone.
        for name in files:
            text = (HERE / name).read_text(encoding="utf-8").replace("__PREFIX__", prefix)
            lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
            for statement in "\n".join(lines).split(";\n"):
                if statement.strip():
                    cursor.execute(statement)
    finally:
        connection.close()


def dead_url() -> str:
    """A MySQL URL on a free local port with nothing listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"mysql+aiomysql://root@127.0.0.1:{port}/shop"
