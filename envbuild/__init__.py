"""envbuild: declare conda environments, lock them, and rebuild them from scratch."""

from __future__ import annotations

__version__ = "0.1.0"
