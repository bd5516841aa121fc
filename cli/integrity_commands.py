"""Registers the integrity and inspection commands (cli.integrity, cli.history) on the app."""

from cli import history, integrity  # noqa: F401
