"""Compact JSON bytes, exactly as the standard library writes them, several times faster.

``dumps(data)`` is ``json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()`` byte
for byte (``sort_keys`` too). orjson writes the same bytes for strings (every code point), integers,
booleans and null, and sorts keys in the same order (UTF-8 byte order is code point order); it
writes some floats differently (see :func:`differs`) and refuses integers beyond 64 bits,
non-string keys and lone surrogates, so data holding any of those takes the ``json`` path.
Non-finite floats (NaN, infinities) are left out of that promise (orjson writes ``null``, ``json``
``NaN``): JSON has no such numbers, and ``loads`` refuses them, so no decoded message holds one.
``loads`` reads what ``json.loads`` reads, with the same values, except non-finite numbers
(``NaN``, ``Infinity``, ``1e400``), which it refuses. Pure: no I/O.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

# Digits → "0", so that fixed-string searches find number shapes (``bytes.translate`` and ``find``
# run in C; a regular expression over a whole message costs more than the encoding it guards).
_DIGITS = bytes.maketrans(b"0123456789", b"0000000000")
_LONG_NUMBER = b"0" * 19


def differs(fast: bytes) -> bool:
    """True when ``json`` may write ``fast`` (from orjson, or pydantic's JSON serializer) differently.
    Both write every string, integer, boolean and null as ``json`` does, and every float as ``repr``
    does except for exponents -5 to -9: ``0.000012345`` (orjson) for ``1.2345e-05``, ``1.2e-7`` for
    ``1.2e-07``. Look for those two shapes (text that merely looks like them only costs the ``json``
    path)."""
    if b"0.0000" in fast:
        return True
    if b"e-" not in fast:  # no negative exponent anywhere: skip the translation
        return False
    shapes = fast.translate(_DIGITS)
    at = shapes.find(b"0e-0")
    while at >= 0:
        if shapes[at + 4 : at + 5] != b"0":  # a one-digit negative exponent
            return True
        at = shapes.find(b"0e-0", at + 4)
    return False


def dumps(data: Any, *, sort_keys: bool = False) -> bytes:
    """Compact UTF-8 JSON, the bytes ``json.dumps(..., separators=(",", ":"), ensure_ascii=False)``
    writes (with ``sort_keys`` when asked). ``tests/protocol/test_message_json.py`` pins it."""
    try:
        fast = orjson.dumps(data, option=orjson.OPT_SORT_KEYS if sort_keys else None)
    except TypeError:  # orjson.JSONEncodeError: big integers, lone surrogates, deep nesting, int keys
        fast = None
    if fast is not None and not differs(fast):
        return fast
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)
    return text.encode("utf-8")


def _no_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name} (JSON has none)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is too large (not a finite double)")
    return value


def loads(data: bytes) -> Any:
    """``json.loads``, through orjson where it reads the same values, refusing non-finite numbers
    (``NaN``, ``Infinity``, ``1e400``: orjson refuses them too). Raises ValueError (or
    UnicodeDecodeError, RecursionError) as ``json.loads`` does."""
    # orjson reads an integer beyond 64 bits as a float (json keeps it exact): a run of 19 digits
    # anywhere (in a string too, which only costs the slow path) sends the plaintext to json.
    if _LONG_NUMBER not in bytes(data).translate(_DIGITS):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:  # what orjson refuses (NaN, 1e400, ...) json may still read
            pass
    return json.loads(data, parse_constant=_no_constant, parse_float=_finite)
