"""The FIX messages this plugin speaks: tags, message types, and their encoders.

Encoding goes through ``simplefix.FixMessage`` (it computes BodyLength and
CheckSum); decoding is the job of ``hub_plugin_fix.scanner``. Everything here
is pure: bytes out, no I/O, no clock (callers pass ``sending_time_ns``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import simplefix  # type: ignore[import-untyped]  # no py.typed; wrapped here

SOH = b"\x01"

BEGIN_STRINGS = ("FIX.4.2", "FIX.4.4", "FIXT.1.1")
DEFAULT_APPL_VER_ID = "9"
"""FIX.5.0SP2, announced in a FIXT.1.1 Logon (DefaultApplVerID, 1137)."""


class Tag:
    """Tag numbers used by the session and market-data layers."""

    BEGIN_SEQ_NO = 7
    BEGIN_STRING = 8
    BODY_LENGTH = 9
    CHECKSUM = 10
    END_SEQ_NO = 16
    MSG_SEQ_NUM = 34
    MSG_TYPE = 35
    NEW_SEQ_NO = 36
    POSS_DUP_FLAG = 43
    REF_SEQ_NUM = 45
    SENDER_COMP_ID = 49
    SENDING_TIME = 52
    SYMBOL = 55
    TARGET_COMP_ID = 56
    TEXT = 58
    ENCRYPT_METHOD = 98
    HEART_BT_INT = 108
    TEST_REQ_ID = 112
    ORIG_SENDING_TIME = 122
    GAP_FILL_FLAG = 123
    RESET_SEQ_NUM_FLAG = 141
    NO_RELATED_SYM = 146
    MD_REQ_ID = 262
    SUBSCRIPTION_REQUEST_TYPE = 263
    MARKET_DEPTH = 264
    MD_UPDATE_TYPE = 265
    NO_MD_ENTRY_TYPES = 267
    NO_MD_ENTRIES = 268
    MD_ENTRY_TYPE = 269
    MD_ENTRY_PX = 270
    MD_ENTRY_SIZE = 271
    MD_ENTRY_DATE = 272
    MD_ENTRY_TIME = 273
    MD_ENTRY_ID = 278
    MD_UPDATE_ACTION = 279
    MD_REQ_REJ_REASON = 281
    REF_TAG_ID = 371
    REF_MSG_TYPE = 372
    SESSION_REJECT_REASON = 373
    BUSINESS_REJECT_REF_ID = 379
    BUSINESS_REJECT_REASON = 380
    USERNAME = 553
    PASSWORD = 554
    APPL_VER_ID = 1128
    DEFAULT_APPL_VER_ID = 1137
    AGGRESSOR_SIDE = 2446


class MsgType:
    """MsgType (35) values."""

    HEARTBEAT = "0"
    TEST_REQUEST = "1"
    RESEND_REQUEST = "2"
    REJECT = "3"
    SEQUENCE_RESET = "4"
    LOGOUT = "5"
    LOGON = "A"
    BUSINESS_REJECT = "j"
    MARKET_DATA_REQUEST = "V"
    MARKET_DATA_SNAPSHOT = "W"
    MARKET_DATA_INCREMENTAL = "X"
    MARKET_DATA_REQUEST_REJECT = "Y"


ADMIN_TYPES = frozenset("012345A")
"""Session-level message types (never resent: a ResendRequest gap-fills them)."""

ENTRY_TYPE_CODES = {"bid": "0", "offer": "1", "trade": "2"}
"""``entry_types`` option names -> MDEntryType (269) codes."""

# SubscriptionRequestType (263)
SNAPSHOT_PLUS_UPDATES = "1"
DISABLE_UPDATES = "2"
# MDUpdateType (265)
INCREMENTAL_REFRESH = "1"

SESSION_REJECT_REASONS = {
    "0": "invalid tag number",
    "1": "required tag missing",
    "2": "tag not defined for this message type",
    "3": "undefined tag",
    "4": "tag specified without a value",
    "5": "value is incorrect (out of range) for this tag",
    "6": "incorrect data format for value",
    "7": "decryption problem",
    "8": "signature problem",
    "9": "CompID problem",
    "10": "SendingTime accuracy problem",
    "11": "invalid MsgType",
    "13": "tag appears more than once",
    "14": "tag specified out of required order",
    "15": "repeating group fields out of order",
    "16": "incorrect NumInGroup count for repeating group",
    "99": "other",
}

BUSINESS_REJECT_REASONS = {
    "0": "other",
    "1": "unknown ID",
    "2": "unknown security",
    "3": "unsupported message type",
    "4": "application not available",
    "5": "conditionally required field missing",
    "6": "not authorized",
}

MD_REJECT_REASONS = {
    "0": "unknown symbol",
    "1": "duplicate MDReqID",
    "2": "insufficient bandwidth",
    "3": "insufficient permissions",
    "4": "unsupported SubscriptionRequestType",
    "5": "unsupported MarketDepth",
    "6": "unsupported MDUpdateType",
    "7": "unsupported AggregatedBook",
    "8": "unsupported MDEntryType",
    "9": "unsupported TradingSessionID",
    "A": "unsupported Scope",
    "B": "unsupported OpenCloseSettlFlag",
    "C": "unsupported MDImplicitDelete",
}


def utc_timestamp(ns: int) -> str:
    """UTCTimestamp ``YYYYMMDD-HH:MM:SS.sss`` of ``ns`` since the epoch (milliseconds:
    what FIX 4.2/4.4 allow)."""
    secs, rem = divmod(ns, 1_000_000_000)
    t = time.gmtime(secs)
    return (
        f"{t.tm_year:04d}{t.tm_mon:02d}{t.tm_mday:02d}-"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{rem // 1_000_000:03d}"
    )


@dataclass(frozen=True)
class Header:
    """Who talks to whom: the fixed part of every outgoing header."""

    begin_string: str
    sender_comp_id: str
    target_comp_id: str


def new_message(
    header: Header,
    msg_type: str,
    seq: int,
    sending_time_ns: int,
    *,
    poss_dup: bool = False,
    orig_sending_time_ns: int = 0,
) -> simplefix.FixMessage:
    """A message with its standard header; the caller appends the body, then
    ``encode()`` computes BodyLength and CheckSum."""
    m = simplefix.FixMessage()
    m.append_pair(Tag.BEGIN_STRING, header.begin_string, header=True)
    m.append_pair(Tag.MSG_TYPE, msg_type, header=True)
    m.append_pair(Tag.SENDER_COMP_ID, header.sender_comp_id, header=True)
    m.append_pair(Tag.TARGET_COMP_ID, header.target_comp_id, header=True)
    m.append_pair(Tag.MSG_SEQ_NUM, seq, header=True)
    if poss_dup:
        m.append_pair(Tag.POSS_DUP_FLAG, "Y", header=True)
    m.append_pair(Tag.SENDING_TIME, utc_timestamp(sending_time_ns), header=True)
    if poss_dup:
        m.append_pair(
            Tag.ORIG_SENDING_TIME,
            utc_timestamp(orig_sending_time_ns or sending_time_ns),
            header=True,
        )
    return m


def encode(m: Any) -> bytes:
    """Wire bytes of ``m`` (BodyLength and CheckSum computed)."""
    data: bytes = m.encode()
    return data


def logon_body(
    m: simplefix.FixMessage,
    heartbeat_s: int,
    *,
    reset: bool,
    username: str | None = None,
    password: str | None = None,
    begin_string: str = "FIX.4.4",
) -> None:
    """Logon (35=A) body: EncryptMethod none, HeartBtInt, optional ResetSeqNumFlag and
    Username/Password (553/554), DefaultApplVerID on FIXT.1.1."""
    m.append_pair(Tag.ENCRYPT_METHOD, 0)
    m.append_pair(Tag.HEART_BT_INT, heartbeat_s)
    if reset:
        m.append_pair(Tag.RESET_SEQ_NUM_FLAG, "Y")
    if username is not None:
        m.append_pair(Tag.USERNAME, username)
    if password is not None:
        m.append_pair(Tag.PASSWORD, password)
    if begin_string == "FIXT.1.1":
        m.append_pair(Tag.DEFAULT_APPL_VER_ID, DEFAULT_APPL_VER_ID)


def market_data_request_body(
    m: simplefix.FixMessage,
    req_id: str,
    symbol: str,
    *,
    subscribe: bool,
    depth: int,
    entry_types: Sequence[str],
) -> None:
    """MarketDataRequest (35=V) for one symbol: snapshot + updates (263=1) with
    incremental refresh (265=1), or disable (263=2) for the same MDReqID."""
    m.append_pair(Tag.MD_REQ_ID, req_id)
    m.append_pair(
        Tag.SUBSCRIPTION_REQUEST_TYPE, SNAPSHOT_PLUS_UPDATES if subscribe else DISABLE_UPDATES
    )
    m.append_pair(Tag.MARKET_DEPTH, depth)
    m.append_pair(Tag.MD_UPDATE_TYPE, INCREMENTAL_REFRESH)
    m.append_pair(Tag.NO_MD_ENTRY_TYPES, len(entry_types))
    for code in entry_types:
        m.append_pair(Tag.MD_ENTRY_TYPE, code)
    m.append_pair(Tag.NO_RELATED_SYM, 1)
    m.append_pair(Tag.SYMBOL, symbol)


def describe_reason(table: dict[str, str], code: str) -> str:
    """``"5 (unsupported MarketDepth)"`` for a reason code, or the code alone."""
    name = table.get(code)
    return f"{code} ({name})" if name else code


__all__ = [
    "ADMIN_TYPES",
    "BEGIN_STRINGS",
    "BUSINESS_REJECT_REASONS",
    "ENTRY_TYPE_CODES",
    "MD_REJECT_REASONS",
    "SESSION_REJECT_REASONS",
    "SOH",
    "Header",
    "MsgType",
    "Tag",
    "describe_reason",
    "encode",
    "logon_body",
    "market_data_request_body",
    "new_message",
    "utc_timestamp",
]
