"""Errors of the FIX receive path.

They live in an interpreted module on purpose: the compiled scanner raises
them, and a mypyc native class cannot inherit from the interpreted
``hub_core.plugin.DecodeError``.
"""

from __future__ import annotations

from hub_core.plugin import DecodeError, FrameTooLarge


class FixDecodeError(DecodeError):
    """Bytes that are not a usable FIX message. The scanner has already moved past
    them when this is raised: count it and ask for the next message."""


class GarbledMessage(FixDecodeError):
    """Framing is broken (no ``8=``, a bad BodyLength, a wrong CheckSum): the FIX
    spec says to ignore such a message as if it never arrived."""


class MalformedMessage(FixDecodeError):
    """A message with a valid CheckSum whose content cannot be used (bad tag, a
    repeating group that disagrees with its count, a price that is not a number)."""


class MessageTooLarge(GarbledMessage, FrameTooLarge):
    """BodyLength above the reader's bound."""


__all__ = ["FixDecodeError", "GarbledMessage", "MalformedMessage", "MessageTooLarge"]
