"""The ``hub`` command (console script ``hub = "hub_core.cli:main"``).

Commands: ``demo``, ``run``, ``plugins``, ``check``, ``sim``; see
sdk-docs/cli.md. This package stays interpreted (argparse, rich, pluggy),
and imports rich and prometheus-client only for the commands that use them.
"""

from __future__ import annotations

from hub_core.cli.commands import build_parser, main, version_text
from hub_core.cli.session import ExitCode

__all__ = ["ExitCode", "build_parser", "main", "version_text"]
