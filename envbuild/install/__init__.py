"""Lockfile -> prefix: install exactly the locked records, bytecode, PyPI layer."""
