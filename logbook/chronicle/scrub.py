"""Make what a chronicle publishes safe: every string is redacted again (the record was redacted
when it was written, but a secret may have slipped in by a path logbook did not know), and, with
--anonymize, host and user names are replaced. Escaping is the templates' job, not this one's.

Tables are scrubbed through their dictionaries: each distinct string is cleaned once, so a column of
a million rows with a hundred distinct values costs a hundred regex scans.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from logbook.record.redact import redact_command, redact_text, redact_value

if TYPE_CHECKING:
    import pyarrow as pa

    from logbook.chronicle.anonymize import Anonymizer


class Numbers(list):  # type: ignore[type-arg]
    """Rows of numbers only (a curve's points, made by a query of steps and values): the
    scrubber passes them by, which walking two million tuples took 4-8 s of a chronicle."""


_PLAIN = frozenset({int, float, bool})


class Scrubber:
    """Redact, then anonymize if asked, any value on its way out."""

    def __init__(self, anonymizer: Anonymizer | None = None) -> None:
        self.anonymizer = anonymizer
        # Each distinct string is cleaned once: the sections of a long run hold a few thousand
        # distinct strings in over two million places (their dicts' keys, mostly), and cleaning
        # each place was 2 s of a plain chronicle and 4.5 s of an anonymized one (#16). The
        # answer for a string never changes: a name the anonymizer learns later gets a stand-in
        # of its own and never changes an earlier one's.
        self._done: dict[str, str] = {}

    def text(self, text: str) -> str:
        """One string, redacted and anonymized."""
        done = self._done.get(text)
        if done is None:
            done = redact_text(text)
            if self.anonymizer:
                done = self.anonymizer.text(done)
            self._done[text] = done
        return done

    def named(self, name: str, value: str) -> str:
        """A named value (an environment variable, a launcher setting): secret names hide it all."""
        return self.text(redact_value(name, value)[0])

    def walk(self, value: Any) -> Any:
        """Any nested structure of dicts, lists and scalars, every string cleaned (dict keys too)."""
        if value is None or type(value) in _PLAIN:  # most values: asked first (#16)
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                (self.text(k) if isinstance(k, str) else k): self.walk(v) for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            if isinstance(value, Numbers):
                return value  # a curve's (step, value, lo, hi) rows: millions of them, no text
            cleaned = [self.walk(v) for v in value]
            return tuple(cleaned) if isinstance(value, tuple) else cleaned
        return value  # numbers, times, None

    def table(self, data: pa.Table, *, named_by: str | None = None) -> pa.Table:
        """A pyarrow table with every string column cleaned; with `named_by`, the `value` column of
        rows is cleaned as a named value (its name in that column), as env snapshots need."""
        import pyarrow as pa

        columns = []
        for name in data.column_names:
            col = data.column(name)
            if name == "value" and named_by and named_by in data.column_names:
                col = self._named_column(data.column(named_by), col)
            elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                col = _by_dictionary(col, self.text)
            elif pa.types.is_list(col.type) and pa.types.is_string(col.type.value_type):
                rows = col.to_pylist()
                col = pa.chunked_array(
                    [pa.array([None if r is None else self._argv(r) for r in rows], col.type)],
                    col.type,
                )
            columns.append(col)
        return pa.Table.from_arrays(columns, schema=data.schema)

    def _named_column(self, names: pa.ChunkedArray, values: pa.ChunkedArray) -> pa.ChunkedArray:
        """`values` cleaned as named values, each distinct (name, value) pair once: a store's
        snapshots repeat the same packages and variables for every host and attempt."""
        import pyarrow as pa
        import pyarrow.compute as pc

        keys = pc.binary_join_element_wise(
            pc.fill_null(names, ""), pc.fill_null(values, ""), "\x00"
        )
        pairs = (
            pa.table({"k": keys, "n": names, "v": values}).group_by(["k", "n", "v"]).aggregate([])
        )
        before = pairs.column("v").to_pylist()
        after = [
            None if v is None else self.named(n or "", v)
            for n, v in zip(pairs.column("n").to_pylist(), before, strict=True)
        ]
        if after == before:
            return values
        at = pc.index_in(keys, value_set=pairs.column("k"))
        return pa.chunked_array([pc.take(pa.array(after, values.type), at)], values.type)

    def _argv(self, argv: list[str]) -> list[str]:
        return [self.text(a) for a in redact_command(argv)]


def _by_dictionary(col: pa.ChunkedArray, clean: Callable[[str], str]) -> pa.ChunkedArray:
    import pyarrow as pa
    import pyarrow.compute as pc

    chunks = []
    for chunk in col.chunks:
        encoded = pc.dictionary_encode(chunk)
        words = [None if w is None else clean(w) for w in encoded.dictionary.to_pylist()]
        fresh = pa.DictionaryArray.from_arrays(encoded.indices, pa.array(words, pa.string()))
        chunks.append(fresh.cast(col.type))
    return pa.chunked_array(chunks, col.type)
