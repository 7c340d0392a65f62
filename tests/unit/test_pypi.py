"""pypi-dependencies: resolved with uv (live PyPI), locked by URL+sha256, installed after the
conda layer without duplicating or overwriting conda packages."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("lib/python3.11/site-packages/cv2/__init__.py", "cv2"),
        ("lib/python3.11/site-packages/six.py", "six"),
        ("lib/python3.11/site-packages/six-1.16.0.dist-info/RECORD", ""),
        ("bin/python", ""),
    ],
)
def test_import_names_of_installed_paths(path: str, name: str) -> None:
    from envbuild.lock.pypi import top_level

    assert top_level(path) == name
