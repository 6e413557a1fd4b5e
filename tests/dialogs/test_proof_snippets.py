"""The deep-link snippets a shop copies (docs/shop-link/, shown in the README) make links the bot accepts:
the Python one always; the PHP and Go ones run for real where `php` / `go` are installed."""

from __future__ import annotations

import os
import runpy
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from dialogs.proof import LinkCheck, LinkProblem, check_link

SNIPPETS = Path(__file__).resolve().parents[2] / "docs" / "shop-link"
BOT, SECRET, ORDER = "shop_refund_bot", "s3cret-shared-with-the-shop", "8RT2KQ1WZ3M4N5P6"


def accepted(link: str, hours: float) -> None:
    """The link opens ORDER now, on BOT, and has expired once `hours` are over."""
    url = urlsplit(link)
    assert (url.scheme, url.netloc, url.path) == ("https", "t.me", f"/{BOT}")
    [parameter] = parse_qs(url.query)["start"]
    now = datetime.now(UTC)
    assert check_link(SECRET, parameter, now) == LinkCheck(ORDER, None)
    assert check_link(SECRET, parameter, now + timedelta(hours=hours, minutes=1)).problem is LinkProblem.EXPIRED
    assert check_link("another secret", parameter, now).problem is LinkProblem.FORGED


def test_the_python_snippet_makes_links_the_bot_accepts() -> None:
    refund_link = runpy.run_path(str(SNIPPETS / "refund_link.py"))["refund_link"]
    accepted(refund_link(BOT, SECRET, ORDER, hours=2), hours=2)


@pytest.mark.skipif(shutil.which("php") is None, reason="no `php` on PATH (apt-get install php-cli to run it)")
def test_the_php_snippet_makes_links_the_bot_accepts() -> None:
    code = (SNIPPETS / "refund_link.php").read_text(encoding="utf-8").removeprefix("<?php")
    code += f"\necho refund_link('{BOT}', '{SECRET}', '{ORDER}', 2);\n"
    link = subprocess.run(["php", "-r", code], capture_output=True, text=True, check=True, timeout=30).stdout
    accepted(link.strip(), hours=2)


@pytest.mark.skipif(shutil.which("go") is None, reason="no `go` on PATH (apt-get install golang-go to run it)")
def test_the_go_snippet_makes_links_the_bot_accepts(tmp_path: Path) -> None:
    source = (SNIPPETS / "refund_link.go").read_text(encoding="utf-8")
    (tmp_path / "refund_link.go").write_text(source.replace("package refundlink", "package main"), encoding="utf-8")
    (tmp_path / "main.go").write_text(
        'package main\n\nimport (\n\t"fmt"\n\t"time"\n)\n\n'
        f'func main() {{ fmt.Print(RefundLink("{BOT}", "{SECRET}", "{ORDER}", 2*time.Hour)) }}\n', encoding="utf-8")
    env = {**os.environ, "GOCACHE": str(tmp_path / "cache"), "GOPATH": str(tmp_path / "gopath"), "GO111MODULE": "off",
           "GOFLAGS": ""}
    link = subprocess.run(["go", "run", "main.go", "refund_link.go"], cwd=tmp_path, capture_output=True, text=True,
                          check=True, timeout=120, env=env).stdout
    accepted(link.strip(), hours=2)
