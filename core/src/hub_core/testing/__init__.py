"""Test support for hub plugins: the conformance suite, its fixtures, and the Gap rule."""

from hub_core.testing.conformance import (
    ConformanceSuite,
    EventRecorder,
    SimulatorHandle,
    SyncFaultsAdapter,
)
from hub_core.testing.coverage import (
    Window,
    assert_blind_windows_covered,
    blind_windows,
    connection_gaps,
    uncovered,
)

__all__ = [
    "ConformanceSuite",
    "EventRecorder",
    "SimulatorHandle",
    "SyncFaultsAdapter",
    "Window",
    "assert_blind_windows_covered",
    "blind_windows",
    "connection_gaps",
    "uncovered",
]
