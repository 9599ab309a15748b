"""Test support for hub plugins: the conformance suite, its fixtures, and the Gap rule."""

from hub_core.testing.conformance import (
    ConformanceSuite,
    EventRecorder,
    SimulatorHandle,
)
from hub_core.testing.coverage import (
    DATA_TYPES,
    FINAL_STATES,
    Window,
    assert_blind_windows_covered,
    blind_windows,
    connection_gaps,
    trailing_windows,
    uncovered,
)

__all__ = [
    "DATA_TYPES",
    "FINAL_STATES",
    "ConformanceSuite",
    "EventRecorder",
    "SimulatorHandle",
    "Window",
    "assert_blind_windows_covered",
    "blind_windows",
    "connection_gaps",
    "trailing_windows",
    "uncovered",
]
