"""Examine any conda prefix: verify against its lock, doctor, adopt."""
