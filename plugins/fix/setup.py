"""Build hook: compile the FIX receive path with mypyc.

Set ``HUB_FIX_PURE=1`` to build the pure-Python fallback (same source, no
extension modules). Only the byte-crunching modules are compiled, as one
group so their native calls stay native; the session, connection, simulator
and hooks stay interpreted (pluggy, pydantic and simplefix need that).
"""

import os
import sys

from setuptools import setup

COMPILED_MODULES = ["scanner", "marketdata"]

ext_modules = []
# Metadata-only invocations (pip's prepare-metadata step) need no compilation.
_METADATA_ONLY = any(cmd in sys.argv for cmd in ("egg_info", "dist_info"))
if os.environ.get("HUB_FIX_PURE", "") not in ("1", "true", "yes") and not _METADATA_ONLY:
    from mypyc.build import mypycify

    here = os.path.dirname(os.path.abspath(__file__))
    os.chdir(here)
    ext_modules = mypycify(
        [
            "--config-file",
            "mypyc.ini",
            *(f"src/hub_plugin_fix/{name}.py" for name in COMPILED_MODULES),
        ],
        opt_level="3",
        debug_level="0",
        group_name="hub_plugin_fix_native",
    )

# Pure and compiled builds must never share a build tree.
build_base = "build" if ext_modules else "build-pure"
setup(ext_modules=ext_modules, options={"build": {"build_base": build_base}})
