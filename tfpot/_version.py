"""The version of tfpot (as pyproject.toml says), in a module that imports nothing, so that any
module can record it without importing the package ``__init__`` (and what that imports)."""

__version__ = "0.14.1"
