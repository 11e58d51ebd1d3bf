"""The `synthgate` command line."""

from generator.cli.app import app, main

__all__ = ["app", "main"]
