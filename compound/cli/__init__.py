"""The ``compound`` command (``main``) and its environment check (``doctor``)."""

from compound.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
