"""The build under test is the one `make test` says it is."""

import os
from pathlib import Path

import hub_core
from hub_core import bus, dbn, fixed, processor, ticks


def test_compiled_flag_matches_the_build() -> None:
    expect_pure = os.environ.get("HUB_EXPECT_PURE") == "1"
    assert hub_core.COMPILED is (not expect_pure)
    for mod in (ticks, bus, fixed, processor, dbn):
        suffix = Path(mod.__file__ or "").suffix
        assert (suffix == ".so") is hub_core.COMPILED, mod.__name__


def test_runs_against_the_installed_package_not_the_source_tree() -> None:
    assert "site-packages" in (hub_core.__file__ or "")
