"""Build hook: compile the hub's hot data path with mypyc.

Set ``HUB_CORE_PURE=1`` to build the pure-Python fallback instead (same source,
no extension modules). Only the modules in ``COMPILED_MODULES`` are compiled:
pluggy must set attributes on hook functions and interpreted classes cannot
inherit from compiled ones, so hook specs, contracts, config and the CLI stay
interpreted (see sdk-docs/architecture.md).
"""

import os
import sys

from setuptools import setup

COMPILED_MODULES = [
    "fixed",
    "ticks",
    "factories",
    "bus",
    "dbn",
    "latency",
    "processor",
    "benchloop",
    "book",
    "framing",
    "outbound",
]

ext_modules = []
# Metadata-only invocations (pip's prepare-metadata step) need no compilation.
_METADATA_ONLY = any(cmd in sys.argv for cmd in ("egg_info", "dist_info"))
if os.environ.get("HUB_CORE_PURE", "") not in ("1", "true", "yes") and not _METADATA_ONLY:
    from mypyc.build import mypycify

    here = os.path.dirname(os.path.abspath(__file__))
    os.chdir(here)
    ext_modules = mypycify(
        [
            "--config-file",
            "mypyc.ini",
            *(f"src/hub_core/{name}.py" for name in COMPILED_MODULES),
        ],
        opt_level="3",
        debug_level="0",
        # one compilation group: native objects are only built fast inside one unit
        group_name="hub_core_native",
    )

# Pure and compiled builds must never share a build tree: a stale extension in
# build/ would otherwise ship inside the "pure" wheel.
build_base = "build" if ext_modules else "build-pure"
setup(ext_modules=ext_modules, options={"build": {"build_base": build_base}})
