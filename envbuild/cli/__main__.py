"""``python -m envbuild.cli``: the ``envbuild`` command."""

from __future__ import annotations

from envbuild.cli.entry import main

if __name__ == "__main__":  # importing the module (tools, tests) runs nothing
    raise SystemExit(main())
