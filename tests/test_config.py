"""config.example.toml documents every setting, and loading obeys file, defaults and environment."""

import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from bot.config import AppConfig, load_config

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"


def fields(model: type[BaseModel], prefix: str = "") -> set[str]:
    out = set()
    for name, info in model.model_fields.items():
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            out |= fields(sub, f"{prefix}{name}.")
        else:
            out.add(prefix + name)
    return out


def keys(table: dict, prefix: str = "") -> set[str]:
    out = set()
    for name, value in table.items():
        if isinstance(value, dict) and name not in ("min_evidence", "credit_working_days", "aliases", "rails",
                                                                 "channels", "kinds", "kind_keywords"):  # maps
            out |= keys(value, f"{prefix}{name}.")
        else:
            out.add(prefix + name)
    return out


def test_the_example_documents_every_setting_and_loads():
    assert fields(AppConfig) == keys(tomllib.loads(EXAMPLE.read_text(encoding="utf-8")))
    assert load_config(EXAMPLE).telegram.mode == "polling"


def test_defaults_apply_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(environ={})
    assert config.database.url.startswith("sqlite:///") and config.i18n.default_locale == "zh_CN"
    assert config.policy.card_claim_window_hours == 24 and config.policy.review_working_days == 3


def test_environment_overrides_secrets(tmp_path):
    config = load_config(EXAMPLE, environ={"REFUNDBOT_TOKEN": "1:abc", "REFUNDBOT_DATABASE_URL": "postgresql://x/y",
                                           "REFUNDBOT_WEBHOOK_SECRET": "s"})
    assert (config.telegram.token, config.database.url, config.telegram.webhook_secret) == (
        "1:abc", "postgresql://x/y", "s")


def test_a_bad_setting_is_refused_with_its_name(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[telegram]\nmode = "carrier-pigeon"\n[orders]\nnumber_pattern = "("\n', encoding="utf-8")
    with pytest.raises(ValidationError) as err:
        load_config(bad)
    assert "mode" in str(err.value) and "number_pattern" in str(err.value)


WEBHOOK = '[telegram]\ntoken = "1:abc"\nmode = "webhook"\n'


def test_webhook_mode_without_a_secret_is_refused_by_the_configuration(tmp_path):
    # Every way of starting refundbot (run, run --workers, the embedding API) takes a validated AppConfig.
    path = tmp_path / "webhook.toml"
    path.write_text(WEBHOOK, encoding="utf-8")
    with pytest.raises(ValidationError, match="webhook_secret"):
        load_config(path, environ={})
    with pytest.raises(ValidationError, match="webhook_secret"):
        AppConfig.model_validate({"telegram": {"mode": "webhook"}})


def test_the_webhook_secret_may_come_from_the_environment(tmp_path):
    path = tmp_path / "webhook.toml"
    path.write_text(WEBHOOK, encoding="utf-8")
    secret = "Az09_-" * 42 + "abcd"  # 256 characters, all of them Telegram's
    assert load_config(path, environ={"REFUNDBOT_WEBHOOK_SECRET": secret}).telegram.webhook_secret == secret


@pytest.mark.parametrize("secret", ["has space", "x" * 257, "秘密", "a+b/c="])
def test_a_secret_telegram_would_refuse_is_refused_in_either_mode(secret):
    for mode in ("polling", "webhook"):
        with pytest.raises(ValidationError, match="A-Z, a-z, 0-9, _ and -"):
            AppConfig.model_validate({"telegram": {"mode": mode, "webhook_secret": secret}})


def test_configuration_errors_are_described_one_line_each_without_their_values():
    from bot.config import describe_errors

    with pytest.raises(ValidationError) as err:
        AppConfig.model_validate({"telegram": {"token": "1:very-secret", "mode": "webhook"},
                                  "platform": {"max_answer_bytes": 1}})
    lines = describe_errors(err.value).splitlines()
    assert len(lines) == 2 and "very-secret" not in " ".join(lines)
    assert lines[0].startswith("[telegram]") and "webhook_secret" in lines[0]
    assert lines[1].startswith("[platform] max_answer_bytes:")


def test_a_card_shop_source_brings_its_own_order_numbers_unless_the_file_names_them():
    dujiaoka = AppConfig.model_validate({"orders": {"source": "dujiaoka"}})
    acg = AppConfig.model_validate({"orders": {"source": "acg_faka"}})
    own = AppConfig.model_validate({"orders": {"source": "dujiaoka", "number_pattern": r"DJ\d+", "number_example": "DJ1"}})
    assert (dujiaoka.orders.number_pattern, dujiaoka.orders.number_example) == (r"[A-Z0-9]{16}", "6HX1Z2YQ4T8KBN3P")
    assert acg.orders.number_pattern == r"\d{18}" and acg.orders.acg_faka.table_prefix == "acg_"
    assert own.orders.number_pattern == r"DJ\d+"


def test_shop_database_urls_and_the_hook_secret_may_come_from_the_environment():
    config = load_config(EXAMPLE, environ={"REFUNDBOT_DUJIAOKA_URL": "mysql+aiomysql://ro:pw@db/dj",
                                           "REFUNDBOT_DUJIAOKA_HOOK_SECRET": "hk", "REFUNDBOT_ACG_FAKA_URL": "mysql://x/y"})
    assert config.orders.dujiaoka.url == "mysql+aiomysql://ro:pw@db/dj" and config.orders.dujiaoka.hook_secret == "hk"
    assert config.orders.acg_faka.url == "mysql://x/y"


def test_a_bad_shop_setting_is_refused_with_its_name():
    with pytest.raises(ValidationError, match="timezone"):
        AppConfig.model_validate({"orders": {"dujiaoka": {"timezone": "Mars/Olympus"}}})
    with pytest.raises(ValidationError, match="table_prefix"):
        AppConfig.model_validate({"orders": {"acg_faka": {"table_prefix": "x; DROP"}}})
    with pytest.raises(ValidationError, match="channels"):
        AppConfig.model_validate({"orders": {"dujiaoka": {"channels": {"paypal": "carrier-pigeon"}}}})
