"""The package version, in a module of its own so that low-level modules (run.py) can name it
without importing the whole package."""

__version__ = "0.1.0"  # equal to pyproject.toml's (tests/test_structure.py)
