"""`refundbot doctor`'s `rails` check (bot/doctor_rails.py): each rail gateway in use is built and asked
to prove its keys (`check()`); a key that does not load or a missing key file is named, with its setting."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.config import AppConfig, DatabaseConfig, PlatformConfig
from bot.doctor import Level, diagnose
from bot.doctor_rails import RailFinding, rail_findings
from bot.rails import BUILDERS
from dialogs.ports import RefundGateway
from tests.bot.test_reconcile import QueryRail


class CheckedRail(QueryRail):
    """A rail whose check() says `said`, or raises it when it is an exception; remembers being closed."""

    def __init__(self, name: str, said: str | Exception) -> None:
        super().__init__(name=name)
        self.said = said
        self.closed = False

    async def check(self) -> str:
        if isinstance(self.said, Exception):
            raise self.said
        return self.said

    async def close(self) -> None:
        self.closed = True


def missing_key_file(config: PlatformConfig) -> RefundGateway:
    raise ValueError("[platform.wechat] private_key_file: /etc/refundbot/apiclient_key.pem does not exist")


async def findings(platform: PlatformConfig, builders: dict[str, Callable[[PlatformConfig], RefundGateway]]
                   ) -> list[RailFinding]:
    return [finding async for finding in rail_findings(platform, builders)]


async def test_a_rail_whose_keys_check_out_is_ok_in_its_own_words_and_closed() -> None:
    rail = CheckedRail("alipay", "signed a sample with the app private key; Alipay's public key loads")

    [finding] = await findings(PlatformConfig(rails={"alipay": "alipay"}), {"alipay": lambda config: rail})

    assert finding == ("ok", "alipay: signed a sample with the app private key; Alipay's public key loads")
    assert rail.closed


async def test_a_rail_whose_check_raises_fails_with_the_problem() -> None:
    rail = CheckedRail("epay", ValueError("[platform.epay] platform_public_key: not a PEM public key"))

    [finding] = await findings(PlatformConfig(rails={"epay": "epay"}), {"epay": lambda config: rail})

    assert finding == ("fail", "epay: [platform.epay] platform_public_key: not a PEM public key")
    assert rail.closed


async def test_a_rail_that_cannot_be_built_fails_naming_the_setting() -> None:
    [finding] = await findings(PlatformConfig(rails={"wechat": "wechat"}), {"wechat": missing_key_file})

    named = ("wechat: [platform.wechat] private_key_file: /etc/refundbot/apiclient_key.pem does not exist "
             "(see [platform.wechat] in config.example.toml)")
    assert finding == ("fail", named)


async def test_a_rail_without_a_check_is_a_warning() -> None:
    [finding] = await findings(PlatformConfig(rails={"alipay": "alipay"}),
                               {"alipay": lambda config: QueryRail(name="alipay")})

    assert finding == ("warn", "alipay: this gateway cannot check its keys without calling the rail")


async def test_manual_and_http_have_no_keys_to_check() -> None:
    assert await findings(PlatformConfig(gateway="http", rails={"balance": "manual"}), {}) == []


async def test_an_unknown_gateway_name_fails() -> None:
    [finding] = await findings(PlatformConfig(rails={"alipay": "alippay"}), {"alipay": missing_key_file})

    level, text = finding
    assert level == "fail" and text.startswith("[platform.rails] names a gateway 'alippay' that does not exist")


async def test_doctor_runs_the_rails_check_after_the_platform_s(monkeypatch: pytest.MonkeyPatch,
                                                                migrated_database_url: str) -> None:
    good = CheckedRail("alipay", "keys load")
    monkeypatch.setitem(BUILDERS, "goodrail", lambda config: good)
    monkeypatch.setitem(BUILDERS, "badrail", lambda config: CheckedRail("wechat", ValueError("no APIv3 key")))
    config = AppConfig(database=DatabaseConfig(url=migrated_database_url),
                       platform=PlatformConfig(rails={"alipay": "goodrail", "wechat": "badrail"}))

    found = [(f.check, f.level, f.text) async for f in diagnose(config)]

    checks = [check for check, _, _ in found]
    assert checks.index("rails") > checks.index("platform")
    assert [(level, text) for check, level, text in found if check == "rails"] == [
        (Level.OK, "goodrail: keys load"), (Level.FAIL, "badrail: no APIv3 key")]
