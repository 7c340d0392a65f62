"""The one guard around py-rattler's parsers (``MatchSpec``, ``PrefixRecord``): what they
raise is data, never a crash.

py-rattler's parse errors are ordinary exceptions, but a panic in its Rust code reaches
Python as pyo3's ``PanicException``, which derives from ``BaseException``
(https://pyo3.rs/main/doc/pyo3/panic/struct.panicexception): ``except Exception`` lets it
through. So everything is caught except what asks the process to stop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


def guarded(parse: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | BaseException:
    """``parse(*args, **kwargs)``, or the exception it raised (pyo3 panics included) as a
    value for the caller to report or skip. KeyboardInterrupt and SystemExit propagate."""
    try:
        return parse(*args, **kwargs)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # py-rattler's parse errors, and pyo3's PanicException
        return e
