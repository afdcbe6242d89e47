"""The ``worldmodels`` command: argument parsing (``main``) and the command bodies (``commands``)."""

from worldmodels.cli.main import main

__all__ = ["main"]
