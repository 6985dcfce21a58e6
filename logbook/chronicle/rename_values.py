"""Rename the values of one dictionary-encoded string column of a Parquet file without re-encoding
it (#16): `--anonymize` replaces the host of ~100 M samples, and re-encoding them took ~25 s of a
55 s chronicle on two cores; this takes well under a second.

In a dictionary-encoded column chunk the strings live only in its dictionary page; the data pages
hold indices into it. So the new file is the old one byte for byte, except:

- each row group's chunk of the column: a new dictionary page (the same strings renamed, in the
  same order, compressed again with the chunk's codec), its data pages' headers without their
  statistics (min and max are names), the pages themselves as they were;
- the footer (Thrift): the offsets after a rewritten chunk shifted, the chunk's sizes fixed, its
  statistics and size statistics dropped (they hold names, or count their bytes); every other
  field, known or not, kept as it was.

Anything else (a data page not dictionary-encoded, a page index or bloom filter, encryption, a
footer or page header this code does not know as well as it would need to) returns None, and the
caller re-encodes the file the slow way.
"""

from __future__ import annotations

import mmap
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from logbook.chronicle import _thrift
from logbook.chronicle._thrift import Struct

MAGIC = b"PAR1"
BYTE_ARRAY = 6  # physical type
CODECS = {0: None, 1: "snappy", 2: "gzip", 4: "brotli", 6: "zstd", 7: "lz4_raw"}
DICTIONARY_ENCODINGS = {2, 8}  # PLAIN_DICTIONARY, RLE_DICTIONARY
PLAIN = 0
DATA_PAGE, DICTIONARY_PAGE, DATA_PAGE_V2 = 0, 2, 3
# Fields known well enough to rewrite around them; any other field in the renamed column's
# structs (a new kind of statistics could hold names) means: re-encode instead.
CHUNK_FIELDS = {2, 3}  # file_offset, meta_data (not: file_path, page index, encryption)
META_FIELDS = set(range(1, 10)) | {11, 12, 13, 16}  # not: index page, bloom filter, geospatial
META_DROPPED = (12, 16)  # statistics, size_statistics
PAGE_FIELDS = {1, 2, 3, 4, 5, 7, 8}  # type, sizes, crc, data/dictionary/data v2 header
DATA_HEADER_FIELDS = {DATA_PAGE: (5, set(range(1, 6))), DATA_PAGE_V2: (8, set(range(1, 9)))}
PAGE_HEADER_OF = {DATA_PAGE: 5, DICTIONARY_PAGE: 7, DATA_PAGE_V2: 8}


class _Unexpected(Exception):
    """Not a file this module rewrites: re-encode it."""


@dataclass
class _Chunk:
    """One rewritten column chunk: where it was, its new bytes, its sizes' changes."""

    start: int
    end: int
    data: bytes
    uncompressed_delta: int
    first_data_page: int  # offset in the new file

    @property
    def delta(self) -> int:
        return len(self.data) - (self.end - self.start)


def rename_values(
    src: Path, dest: Path, column: str, rename: Callable[[str], str | None]
) -> int | None:
    """Write `src` to `dest` with every value of `column` renamed, copying the rest as it is.

    Args:
        src: a Parquet file.
        dest: the file to write.
        column: a top-level string column, dictionary-encoded.
        rename: the new name of each value (nulls stay null).

    Returns:
        The file's row count; None (and nothing written) when the file is not one this can
        rewrite: then re-encode it.
    """
    with open(src, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return None
        # Mapped, not read: only the footer and the column's chunks are parsed, and the bytes
        # between them go file to file in the kernel (#16: reading and writing ~2 GB of samples
        # through Python was most of what --anonymize added to a chronicle).
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            rewritten = _rewrite(data, column.encode(), rename)
            if rewritten is None:
                return None
            footer_start, meta, chunks = rewritten
            footer = _thrift.dumps(meta)
            with open(dest, "wb") as out:
                at = 0
                for c in sorted(chunks, key=lambda c: c.start):
                    _copy(f, out, data, at, c.start)
                    out.write(c.data)
                    at = c.end
                _copy(f, out, data, at, footer_start)
                out.write(footer + len(footer).to_bytes(4, "little") + MAGIC)
    return int(meta.get(3))


def _rewrite(
    data: mmap.mmap, column: bytes, rename: Callable[[str], str | None]
) -> tuple[int, Struct, list[_Chunk]] | None:
    """The footer's start, the fixed footer and the rewritten chunks; None: re-encode."""
    try:
        footer_start, meta = _footer(data)
        chunks = [_rewrite_chunk(data, cc, rename) for cc in _chunks_of(meta, column)]
        _fix_footer(meta, column, chunks)
    except (_Unexpected, _thrift.ThriftError, ValueError, TypeError, KeyError, AttributeError):
        return None  # not as expected (a field missing or of another type): re-encode it
    return footer_start, meta, chunks


def _copy(src: BinaryIO, out: BinaryIO, data: mmap.mmap, start: int, end: int) -> None:
    """Bytes [start, end) of `src` appended to `out`: in the kernel where it can, else through
    the mapping."""
    out.flush()
    at, left = start, end - start
    try:
        while left > 0:
            n = os.copy_file_range(src.fileno(), out.fileno(), left, at)
            if n == 0:
                break
            at, left = at + n, left - n
    except (AttributeError, OSError):  # not Linux, or not between these file systems
        pass
    if left > 0:
        with memoryview(data) as view:
            out.write(view[at:end])


def _footer(data: bytes | mmap.mmap) -> tuple[int, Struct]:
    """Where the footer starts, and the footer (FileMetaData), checked to write back as read."""
    if len(data) < 12 or data[:4] != MAGIC or data[-4:] != MAGIC:  # PARE: encrypted footer
        raise _Unexpected("not a plain Parquet file")
    size = int.from_bytes(data[-8:-4], "little")
    start = len(data) - 8 - size
    raw = data[start:-8]
    meta, end = _thrift.loads(raw)
    if end != size or _thrift.dumps(meta) != raw or meta.ids() & {8, 9}:  # encryption
        raise _Unexpected("a footer this module would not write back as it was")
    return start, meta


def _chunks_of(meta: Struct, column: bytes) -> list[Struct]:
    """The column's chunk in every row group; no row group or column may have a page index,
    bloom filter, encryption or file of its own (their offsets would need moving too)."""
    found = []
    for group in _items(meta.get(4)):
        for cc in _items(group.get(1)):
            md = cc.get(3)
            if not isinstance(md, Struct) or not cc.ids() <= CHUNK_FIELDS or md.ids() & {14, 15}:
                raise _Unexpected("a page index, bloom filter or encryption")
            if _items(md.get(3)) == [column]:
                found.append(cc)
    if not found:
        raise _Unexpected(f"no column {column!r}")
    return found


def _items(value: object) -> list:  # type: ignore[type-arg]
    if not isinstance(value, _thrift.Container):
        raise _Unexpected("a list expected")
    return value.items


def _rewrite_chunk(
    data: bytes | mmap.mmap, cc: Struct, rename: Callable[[str], str | None]
) -> _Chunk:
    md = cc.get(3)
    if md.get(1) != BYTE_ARRAY or not md.ids() <= META_FIELDS or md.get(4) not in CODECS:
        raise _Unexpected("not a string column this module knows")
    codec = CODECS[md.get(4)]
    start = md.get(11, md.get(9))
    end = start + md.get(7)
    pos, out, unc_delta, first_data = start, bytearray(), 0, None
    while pos < end:
        header, body_at = _thrift.loads(data, pos)
        body_end = body_at + header.get(3)
        if not header.ids() <= PAGE_FIELDS or body_end > end:
            raise _Unexpected("a page header this module does not know")
        kind = header.get(1)
        if kind == DICTIONARY_PAGE and pos == start:
            old_size = header.get(2)
            body = _rename_dictionary(header, data[body_at:body_end], codec, rename)
            unc_delta += header.get(2) - old_size
        elif kind in DATA_HEADER_FIELDS and pos > start:
            _drop_page_statistics(header, kind)
            body = data[body_at:body_end]
            first_data = len(out) if first_data is None else first_data
        else:
            raise _Unexpected(f"page type {kind} where a dictionary or data page was expected")
        new_header = _thrift.dumps(header)
        unc_delta += len(new_header) - (body_at - pos)
        out += new_header + body
        pos = body_end
    if pos != end or first_data is None:
        raise _Unexpected("the chunk's pages do not add up to its size")
    return _Chunk(start, end, bytes(out), unc_delta, start + first_data)


def _rename_dictionary(
    header: Struct, body: bytes, codec: str | None, rename: Callable[[str], str | None]
) -> bytes:
    """The dictionary page's new body; `header` updated to match it."""
    import pyarrow as pa

    dictionary = header.get(7)
    if (
        not isinstance(dictionary, Struct)
        or not dictionary.ids() <= {1, 2, 3}
        or dictionary.get(2) not in (PLAIN, 2)  # PLAIN, PLAIN_DICTIONARY (both plain values)
        or dictionary.get(3, False)  # sorted: renamed, it may not be
    ):
        raise _Unexpected("a dictionary page this module does not know")
    size = header.get(2)
    plain = body if codec is None else pa.Codec(codec).decompress(body, size, asbytes=True)
    names = _plain_strings(plain, dictionary.get(1))
    new_plain = b"".join(_plain_string(_renamed(name, rename)) for name in names)
    new_body = new_plain if codec is None else pa.Codec(codec).compress(new_plain, asbytes=True)
    header.set(2, len(new_plain))
    header.set(3, len(new_body))
    if header.has(4):  # the page's CRC-32, of its body as written
        header.set(4, _signed32(zlib.crc32(new_body)))
    return bytes(new_body)


def _plain_strings(plain: bytes, count: int) -> list[str]:
    """PLAIN byte arrays: a 4-byte little-endian length, then the bytes, `count` times."""
    names, pos = [], 0
    for _ in range(count):
        n = int.from_bytes(plain[pos : pos + 4], "little")
        if pos + 4 + n > len(plain):
            raise _Unexpected("a dictionary shorter than its count")
        names.append(plain[pos + 4 : pos + 4 + n].decode())
        pos += 4 + n
    if pos != len(plain):
        raise _Unexpected("a dictionary longer than its count")
    return names


def _renamed(name: str, rename: Callable[[str], str | None]) -> str:
    new = rename(name)
    if new is None:  # a value cannot become a null in the dictionary
        raise _Unexpected(f"no new name for {name!r}")
    return new


def _plain_string(name: str) -> bytes:
    raw = name.encode()
    return len(raw).to_bytes(4, "little") + raw


def _signed32(n: int) -> int:
    return n - (1 << 32) if n >= 1 << 31 else n


def _drop_page_statistics(header: Struct, kind: int) -> None:
    at, known = DATA_HEADER_FIELDS[kind]
    page = header.get(PAGE_HEADER_OF[kind])
    encoding = page.get(2 if kind == DATA_PAGE else 4) if isinstance(page, Struct) else None
    if encoding not in DICTIONARY_ENCODINGS or not page.ids() <= known:
        raise _Unexpected("a data page not dictionary-encoded")
    page.drop(at)


def _fix_footer(meta: Struct, column: bytes, chunks: list[_Chunk]) -> None:
    """Shift the offsets after each rewritten chunk, fix the sizes, drop the names' statistics."""

    def shift(offset: int) -> int:
        return offset + sum(c.delta for c in chunks if offset >= c.end)

    by_start = {c.start: c for c in chunks}
    for group in _items(meta.get(4)):
        compressed = uncompressed = 0
        for cc in _items(group.get(1)):
            md = cc.get(3)
            old_start = md.get(11, md.get(9))
            if (c := by_start.get(old_start)) is not None and _items(md.get(3)) == [column]:
                for fid in META_DROPPED:
                    md.drop(fid)
                md.set(7, md.get(7) + c.delta)
                md.set(6, md.get(6) + c.uncompressed_delta)
                md.set(9, c.first_data_page + shift(c.start) - c.start)
                if md.has(11):
                    md.set(11, shift(c.start))
                compressed, uncompressed = compressed + c.delta, uncompressed + c.uncompressed_delta
            else:
                for fid in (9, 11):
                    if md.has(fid):
                        md.set(fid, shift(md.get(fid)))
            if cc.get(2):  # deprecated; 0 when not written
                cc.set(2, shift(cc.get(2)))
        for fid, delta in ((2, uncompressed), (6, compressed)):  # total_byte_size, compressed
            if group.has(fid):
                group.set(fid, group.get(fid) + delta)
        if group.has(5):  # file_offset
            group.set(5, shift(group.get(5)))
