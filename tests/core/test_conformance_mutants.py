"""The conformance suite proves what it claims: the line protocol plugin passes every
case, and each deliberately broken variant of it fails the case meant to catch it."""

from __future__ import annotations

from .conformance_mutants import LineConformance


class TestLineProtoConformance(LineConformance):
    """The good plugin: every case passes (the optional faults included)."""
