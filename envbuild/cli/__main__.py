"""``python -m envbuild.cli``: the ``envbuild`` command."""

from __future__ import annotations

from envbuild.cli.entry import main

raise SystemExit(main())
