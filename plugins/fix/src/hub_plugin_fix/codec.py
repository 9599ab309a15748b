"""The sans-I/O FIX protocol as its transports see it: the one module that
``connection`` and ``simulator`` import it from, as every plugin's transport imports
its ``codec``.

FIX needs more than one module to be a codec, so this names each part once, in the
order a received frame goes through them, and holds no code of its own:

* ``scanner``: ``FixReader`` finds each message in the bytes (BodyLength, CheckSum,
  at most ``DEFAULT_MAX_MESSAGE``) and hands it on as a ``Frame``, a view on them;
* ``session``: ``FixSession`` (h11's idiom: ``receive_data``, ``next_event`` until
  ``NEED_DATA``, ``data_to_send``, ``next_timeout``/``tick``) applies the session
  rules: logon, heartbeats, sequence numbers, resends. Its events are what the
  transport acts on;
* ``marketdata``: ``MarketDataDecoder`` turns in-sequence 35=W/X messages into sink
  calls, inside the session, never as events;
* ``messages``: the other direction, tags (``Tag``), message types (``MsgType``),
  the fixed header (``Header``) and the builders the session encodes with.

The parts' own tests import them directly; a transport imports only this.
"""

from __future__ import annotations

from hub_plugin_fix.marketdata import MarketDataDecoder
from hub_plugin_fix.messages import Header, MsgType, Tag
from hub_plugin_fix.scanner import DEFAULT_MAX_MESSAGE, FixReader, Frame
from hub_plugin_fix.session import (
    NEED_DATA,
    AppMessage,
    BusinessReject,
    ConnectionClosed,
    Event,
    FixSession,
    GapUnrecovered,
    LoggedOn,
    LoggedOut,
    LogonRejected,
    LogonRequested,
    Malformed,
    MarketDataRejected,
    NeedData,
    SequenceGap,
    SessionFailed,
    SessionReject,
    State,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE",
    "NEED_DATA",
    "AppMessage",
    "BusinessReject",
    "ConnectionClosed",
    "Event",
    "FixReader",
    "FixSession",
    "Frame",
    "GapUnrecovered",
    "Header",
    "LoggedOn",
    "LoggedOut",
    "LogonRejected",
    "LogonRequested",
    "Malformed",
    "MarketDataDecoder",
    "MarketDataRejected",
    "MsgType",
    "NeedData",
    "SequenceGap",
    "SessionFailed",
    "SessionReject",
    "State",
    "Tag",
]
