"""Thrift's compact protocol, read and written without a schema: Parquet's footer and page headers
are such structs. Every field is kept (field id, type, value), known or not, so a struct written
back holds what it was read with, less what the caller removed; `dumps(loads(b)) == b` for what
Apache Thrift writes (the caller checks that before trusting a rewrite).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from typing import Any

# Compact protocol type ids.
TRUE, FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT, UUID = range(1, 14)
_INTS = (I16, I32, I64)


class ThriftError(ValueError):
    """The bytes are not a compact-protocol struct (or one this reader does not know)."""


@dataclass
class Struct:
    """A struct's fields in the order they were read: [field id, type id, value]."""

    fields: list[list[Any]] = field(default_factory=list)

    def get(self, fid: int, default: Any = None) -> Any:
        return next((f[2] for f in self.fields if f[0] == fid), default)

    def has(self, fid: int) -> bool:
        return any(f[0] == fid for f in self.fields)

    def ids(self) -> set[int]:
        return {f[0] for f in self.fields}

    def set(self, fid: int, value: Any) -> None:
        """Replace the value of a field that is there (its type stays)."""
        for f in self.fields:
            if f[0] == fid:
                f[2] = value
                return
        raise KeyError(fid)

    def drop(self, fid: int) -> None:
        self.fields = [f for f in self.fields if f[0] != fid]


@dataclass
class Container:
    """A list or set (`types` one element type) or a map (key type, value type)."""

    kind: int
    types: tuple[int, ...]
    items: list[Any]


def loads(buf: bytes | memoryview | mmap.mmap, pos: int = 0) -> tuple[Struct, int]:
    """The struct at `pos` of `buf`, and the position just after it."""
    reader = _Reader(memoryview(buf), pos)
    try:
        value = reader.struct()
    except (IndexError, struct.error) as e:
        raise ThriftError(f"truncated struct at {reader.pos}") from e
    return value, reader.pos


def dumps(value: Struct) -> bytes:
    out = bytearray()
    _write_struct(out, value)
    return bytes(out)


class _Reader:
    def __init__(self, buf: memoryview, pos: int) -> None:
        self.buf, self.pos = buf, pos

    def byte(self) -> int:
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise ThriftError(f"varint too long at {self.pos}")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def raw(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise ThriftError(f"{n} bytes past the end at {self.pos}")
        value = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return value

    def struct(self) -> Struct:
        s, last = Struct(), 0
        while (head := self.byte()) != 0:
            kind, delta = head & 0x0F, head >> 4
            fid = last + delta if delta else self.zigzag()
            value = (kind == TRUE) if kind in (TRUE, FALSE) else self.value(kind)
            s.fields.append([fid, kind, value])
            last = fid
        return s

    def value(self, kind: int) -> Any:
        if kind in _INTS:
            return self.zigzag()
        if kind in (BYTE, TRUE, FALSE):  # booleans inside containers are a byte each
            return self.byte()
        if kind == DOUBLE:
            return self.raw(8)
        if kind == UUID:
            return self.raw(16)
        if kind == BINARY:
            return self.raw(self.varint())
        if kind in (LIST, SET):
            head = self.byte()
            size = head >> 4 if head >> 4 != 15 else self.varint()
            elem = head & 0x0F
            return Container(kind, (elem,), [self.value(elem) for _ in range(size)])
        if kind == MAP:
            size = self.varint()
            types = self.byte() if size else 0
            k, v = types >> 4, types & 0x0F
            pairs = [(self.value(k), self.value(v)) for _ in range(size)]
            return Container(kind, (k, v), pairs)
        if kind == STRUCT:
            return self.struct()
        raise ThriftError(f"unknown type {kind} at {self.pos}")


def _varint(out: bytearray, n: int) -> None:
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _zigzag(out: bytearray, n: int) -> None:
    _varint(out, (n << 1) ^ (n >> 63))


def _write_struct(out: bytearray, s: Struct) -> None:
    last = 0
    for fid, kind, value in s.fields:
        if kind in (TRUE, FALSE):
            kind = TRUE if value else FALSE
        if 0 < fid - last <= 15:
            out.append((fid - last) << 4 | kind)
        else:
            out.append(kind)
            _zigzag(out, fid)
        if kind not in (TRUE, FALSE):
            _write_value(out, kind, value)
        last = fid
    out.append(0)


def _write_value(out: bytearray, kind: int, value: Any) -> None:
    if kind in _INTS:
        _zigzag(out, value)
    elif kind in (BYTE, TRUE, FALSE):
        out.append(value & 0xFF)
    elif kind in (DOUBLE, UUID):
        out += value
    elif kind == BINARY:
        _varint(out, len(value))
        out += value
    elif kind in (LIST, SET):
        (elem,) = value.types
        size = len(value.items)
        if size < 15:
            out.append(size << 4 | elem)
        else:
            out.append(0xF0 | elem)
            _varint(out, size)
        for item in value.items:
            _write_value(out, elem, item)
    elif kind == MAP:
        _varint(out, len(value.items))
        if value.items:
            k, v = value.types
            out.append(k << 4 | v)
            for key, item in value.items:
                _write_value(out, k, key)
                _write_value(out, v, item)
    elif kind == STRUCT:
        _write_struct(out, value)
    else:
        raise ThriftError(f"unknown type {kind}")
