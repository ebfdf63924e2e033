"""The package version (the cache keys and the shipped weights record it)."""

__version__ = "0.1.0"
