"""The package version, in a module of its own so that modules inside the package can read
it without importing the package's face (and everything it imports)."""

__version__ = "0.1.0"  # keep equal to pyproject.toml's version
