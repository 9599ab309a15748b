"""Test support for hub plugins: the conformance suite and its fixtures."""

from hub_core.testing.conformance import (
    ConformanceSuite,
    EventRecorder,
    SimulatorHandle,
    SyncFaultsAdapter,
)

__all__ = ["ConformanceSuite", "EventRecorder", "SimulatorHandle", "SyncFaultsAdapter"]
