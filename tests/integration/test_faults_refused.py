"""Fault (c): the venue refuses the session, or rate-limits it.

A refusal (NinjaTrader: wrong password from env credentials; FIX: a Logon the
simulator answers with a Logout; WebSocket: HTTP 401 or 403 on the upgrade; TWS: the
client id in use, a configuration error that ends in ``dead``) must be
tried exactly once (counted by the venue side), end in ``auth_failed`` and make
``hub run`` exit non-zero with one line naming the reason. A rate limit (HTTP 429 with
Retry-After) must be waited out: retried, never sooner than Retry-After.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.faults import (
    CountingRelay,
    RefusingHttpServer,
    Secrets,
    exchange_table,
    rate_limited_scenario,
    refused_scenario,
    venue,
)


def test_ninjatrader_wrong_password_is_tried_once(tmp_path: Path) -> None:
    planted = Secrets()
    # the venue knows the user, with another password than the one in the environment
    users = f"users={planted.env_username}:right{planted.env_password[::-1]}"
    with venue("ninjatrader", tmp_path, "-o", users) as v, CountingRelay(v.port) as relay:
        out = refused_scenario(
            lambda port, s: exchange_table("ninjatrader", port, s),
            relay,
            tmp_path,
            re.compile(r"password|credential|auth", re.IGNORECASE),
            planted,
        )
    out.check()


def test_fix_rejected_logon_is_tried_once(tmp_path: Path) -> None:
    with venue("fix", tmp_path) as v, CountingRelay(v.port) as relay:
        out = refused_scenario(
            # the simulator answers a Logon to another TargetCompID with a Logout
            lambda port, s: exchange_table("fix", port, s, target_comp_id="NOBODY"),
            relay,
            tmp_path,
            re.compile(r"TargetCompID|logon", re.IGNORECASE),
        )
    out.check()


def test_ibkr_client_id_in_use_is_tried_once(tmp_path: Path) -> None:
    # the simulated TWS has another API client on the id the table uses (3): error 326
    with venue("ibkr", tmp_path, "-o", "client_ids_in_use=3") as v, CountingRelay(v.port) as relay:
        out = refused_scenario(
            lambda port, s: exchange_table("ibkr", port, s),
            relay,
            tmp_path,
            re.compile(r"client id 3 .*326"),
            final_state="dead",
        )
    out.check()


@pytest.mark.parametrize(("status", "reason"), [(401, "Unauthorized"), (403, "Forbidden")])
def test_websocket_refused_upgrade_is_tried_once(status: int, reason: str, tmp_path: Path) -> None:
    with RefusingHttpServer(status, reason) as server:
        out = refused_scenario(
            lambda port, s: exchange_table("websocket-binance", port, s),
            server,
            tmp_path,
            re.compile(rf"\b{status}\b"),
        )
    out.check()


def test_websocket_429_waits_out_retry_after(tmp_path: Path) -> None:
    out, accepts = rate_limited_scenario(tmp_path, retry_after_s=2)
    out.check(f"\n-- accepts (monotonic s): {accepts}")
