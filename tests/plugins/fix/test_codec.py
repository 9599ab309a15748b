"""``hub_plugin_fix.codec`` is the sans-I/O protocol's one door: it names the parts'
own objects (no copies, no code of its own), and the transports import the protocol
through it alone (websockets' test_exports idea)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hub_plugin_fix import codec, marketdata, messages, scanner, session

PACKAGE = Path(codec.__file__ or "").parent
PARTS = (scanner, session, marketdata, messages)
PART_NAMES = {part.__name__ for part in PARTS}


def test_every_name_is_the_object_of_the_part_that_defines_it() -> None:
    for name in codec.__all__:
        obj = getattr(codec, name)
        homes = [part for part in PARTS if getattr(part, name, None) is obj]
        assert homes, f"codec.{name} is no part's own"


def test_the_session_layer_is_named_whole() -> None:
    assert set(session.__all__) <= set(codec.__all__)


def test_codec_holds_no_code_of_its_own() -> None:
    tree = ast.parse((PACKAGE / "codec.py").read_text(encoding="utf-8"))
    kinds = {type(node).__name__ for node in tree.body}
    assert kinds <= {"Expr", "ImportFrom", "Assign"}, kinds


@pytest.mark.parametrize("transport", ["connection.py", "simulator.py"])
def test_a_transport_imports_the_protocol_only_through_codec(transport: str) -> None:
    tree = ast.parse((PACKAGE / transport).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            if node.module == "hub_plugin_fix":
                imported |= {f"hub_plugin_fix.{alias.name}" for alias in node.names}
    assert "hub_plugin_fix.codec" in imported
    assert not imported & PART_NAMES, imported & PART_NAMES
