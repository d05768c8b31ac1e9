"""Parsing TOML on every supported Python: :mod:`tomllib` from 3.11, the ``tomli`` backport on 3.10.

Example:
    >>> from taskspace._toml import loads
    >>> loads('n = 3\\n[a]\\nb = "c"')
    {'n': 3, 'a': {'b': 'c'}}
"""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    from tomllib import TOMLDecodeError, loads
else:  # pragma: no cover - exercised on Python 3.10 only
    from tomli import TOMLDecodeError, loads

__all__ = ["TOMLDecodeError", "loads"]
