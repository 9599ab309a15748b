"""An embedded hub leaves the application's garbage collector alone unless asked."""

import subprocess
import sys

import pytest

PROGRAM = """
import gc, sys
import anyio
from hub_core import ExchangeHub, ExchangeRegistry, HubConfig

def state():
    return (gc.get_threshold(), gc.get_freeze_count())

async def main(kwargs):
    async with ExchangeHub(registry=ExchangeRegistry(), **kwargs):
        pass

before = state()
mode = sys.argv[1]
kwargs = {}
if mode == "ask":
    kwargs = {"tune_gc": True}
elif mode == "toml":
    kwargs = {"config": HubConfig.model_validate({"hub": {"gc_freeze": True}})}
elif mode == "toml-off":
    kwargs = {"tune_gc": True, "config": HubConfig.model_validate({"hub": {"gc_freeze": False}})}
anyio.run(main, kwargs)
print("changed" if state() != before else "unchanged")
"""


@pytest.mark.parametrize(
    ("mode", "expect"),
    [("default", "unchanged"), ("ask", "changed"), ("toml", "changed"), ("toml-off", "unchanged")],
)
def test_gc_tuning_is_opt_in_for_an_embedded_hub(mode: str, expect: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM, mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expect
