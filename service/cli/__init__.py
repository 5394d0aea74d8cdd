"""The `undertone` command line: a composition root.

Each module in this package adds its commands through ``register(root)``, so that the
command groups (``keys``, ``db``, ``models``, ``transcribe``, ...) live beside each other
without a central list to edit. Commands that need the analysis libraries import ``workers``
lazily inside the command, so that ``undertone --help`` and the API stay light.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

app = typer.Typer(
    name="undertone",
    help="Undertone: finds the complaint in customer feedback, stated or not.",
    no_args_is_help=True,
    add_completion=False,
)


def _register_commands() -> None:
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_commands()


def main() -> None:
    """Entry point of the `undertone` console script."""
    app()
