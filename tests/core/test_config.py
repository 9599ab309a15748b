from pathlib import Path

import pytest

from hub_core import ConfigError, Credentials, ExchangeConfig, ExchangeId, load_config


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "hub.toml"
    p.write_text(text)
    return p


def test_design_example_parses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BINANCE_KEY", "k-secret-123")
    cfg = load_config(
        write(
            tmp_path,
            """
[hub]
plugins = ["ninjatrader", "websocket"]
[exchanges.es_feed]
protocol = "ninjatrader"
endpoint = "127.0.0.1:7496"
symbols = ["ES", "NQ"]
[exchanges.binance]
protocol = "websocket"
endpoint = "wss://stream.binance.com:9443/ws"
options = { dialect = "binance", channels = ["trade", "bookTicker"] }
[exchanges.binance.credentials]
api_key_env = "BINANCE_KEY"
""",
        )
    )
    assert cfg.hub.plugins == ["ninjatrader", "websocket"]
    es = cfg.exchanges["es_feed"]
    assert es.symbols == ["ES", "NQ"] and es.name == "es_feed"
    b = cfg.exchanges["binance"]
    assert b.credentials.api_key is not None
    assert b.credentials.api_key.get_secret_value() == "k-secret-123"
    assert "k-secret-123" not in repr(cfg) and "k-secret-123" not in str(b.model_dump())


def test_errors_name_the_toml_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"exchanges\.x\.reconnect_delay_ms"):
        load_config(
            write(
                tmp_path,
                """
[exchanges.x]
protocol = "ninjatrader"
endpoint = "127.0.0.1:1"
reconnect_delay_ms = "soon"
""",
            )
        )
    with pytest.raises(ConfigError, match=r"exchanges\.x\.endpoint"):
        load_config(write(tmp_path, '[exchanges.x]\nprotocol = "ninjatrader"\n'))
    with pytest.raises(ConfigError, match=r"exchanges\.x\.symbolz"):
        load_config(write(tmp_path, '[exchanges.x]\nprotocol="a"\nendpoint="b"\nsymbolz=[]\n'))


def test_secrets_never_come_from_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="never read from the config file") as err:
        load_config(
            write(
                tmp_path,
                """
[exchanges.x]
protocol = "ninjatrader"
endpoint = "127.0.0.1:1"
[exchanges.x.credentials]
password = "hunter2"
""",
            )
        )
    assert "hunter2" not in str(err.value)


def test_missing_env_var_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_VAR_X", raising=False)
    with pytest.raises(ConfigError, match="NO_SUCH_VAR_X"):
        load_config(
            write(
                tmp_path,
                """
[exchanges.x]
protocol = "ninjatrader"
endpoint = "127.0.0.1:1"
[exchanges.x.credentials]
password_env = "NO_SUCH_VAR_X"
""",
            )
        )


def test_constructors() -> None:
    assert ExchangeConfig.ninjatrader("127.0.0.1:7496").protocol == "ninjatrader"
    ws = ExchangeConfig.websocket("binance", "wss://x/ws")
    assert ws.options["dialect"] == "binance" and ws.name == "binance"
    assert ExchangeConfig.fix("cme", "fix://127.0.0.1:9878").protocol == "fix"
    ib = ExchangeConfig.interactive_brokers("127.0.0.1:7497", client_id=3)
    assert ib.options["client_id"] == 3
    db = ExchangeConfig.databento("GLBX.MDP3", api_key="db-secret")
    assert db.options["dataset"] == "GLBX.MDP3"
    assert "db-secret" not in repr(db)
    c = ExchangeConfig.ninjatrader(
        "127.0.0.1:1", credentials=Credentials(username="u", password="pw-secret")
    )
    assert "pw-secret" not in repr(c) and "pw-secret" not in str(c)
    with pytest.raises(ValueError, match="reconnect_max_delay_ms"):
        ExchangeConfig.ninjatrader("a:1", reconnect_delay_ms=10, reconnect_max_delay_ms=5)


def test_exchange_id_is_its_name() -> None:
    assert ExchangeId.NINJATRADER == "ninjatrader"
    assert ExchangeId.websocket("binance") == "binance"
    assert ExchangeId.websocket("binance").protocol == "websocket"
    assert ExchangeId.fix("cme").protocol == "fix"
    d = {ExchangeId.websocket("binance"): True}
    assert d["binance"] is True
    assert ExchangeId.INTERACTIVE_BROKERS != ExchangeId.DATABENTO
    with pytest.raises(ValueError):
        ExchangeId("")
