"""The run's data, published beside its chronicle: one Parquet file per table in `data/`
(every row of the run: the attempts' and nodes' full histories, events, snapshots, metrics), the
samples as the store's own parts in `data/samples/`, a README with the table reference, and
example DuckDB queries that a test runs on the published files.

Every string goes out scrubbed (logbook.chronicle.scrub). Samples hold numbers and a host name
only, so their parts are copied byte for byte; to anonymize the host, only the host column's
dictionary and the footer are rewritten (logbook.chronicle.rename_values), and a part not
written that way is re-encoded.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from logbook import query
from logbook import schema as schemas

if TYPE_CHECKING:
    from logbook.chronicle.scrub import Scrubber
    from logbook.store import Store

# Table -> the view that holds all of its rows for the run.
VIEWS = {
    "runs": "runs",
    "attempts": "attempt_changes",
    "nodes": "node_changes",
    "node_steps": "node_steps",
    "events": "events",
    "interruptions": "interruptions",
    "snapshots": "snapshots",
    "metrics": "metrics",
}

EXAMPLES = (
    (
        "How each attempt ended",
        """select label, status, crash_class, round(duration_s / 3600, 2) as hours, summary
from 'attempts.parquet'
qualify row_number() over (partition by attempt_id order by recorded_at desc) = 1
order by start_time""",
    ),
    (
        "Failures by class",
        """select coalesce(crash_class, status) as class, count(*) as attempts
from (from 'attempts.parquet'
      qualify row_number() over (partition by attempt_id order by recorded_at desc) = 1)
where status not in ('completed', 'running') group by all order by attempts desc""",
    ),
    (
        "The loss every 1,000 steps",
        """select step // 1000 * 1000 as step, avg(value) as loss
from 'metrics.parquet' where name = 'loss' and isfinite(value)
group by all order by step""",
    ),
    (
        "Every note, in time order",
        """select time, step, message from 'events.parquet' where kind = 'note' order by time""",
    ),
    (
        "Hyperparameter and data-mix changes",
        """select time, kind, message from 'events.parquet'
where kind in ('hparam_change', 'data_mix_change') order by time""",
    ),
    (
        "Packages of the first attempt",
        """select name, value as version from 'snapshots.parquet'
where kind = 'package' and attempt_id = (select attempt_id from 'attempts.parquet'
                                         order by start_time limit 1)
order by name""",
    ),
    (
        "GPU utilization and power by host (needs the samples)",
        """select host, round(avg(gpu_util_pct), 1) as util_pct, round(max(power_w)) as max_w
from 'samples/*.parquet' where gpu_index is not null group by host order by host""",
    ),
)


@dataclass
class Published:
    """One file of the published data."""

    table: str
    path: str  # relative to the chronicle's folder
    rows: int
    bytes: int


def export(
    store: Store, run: str, folder: Path, scrub: Scrubber, *, samples: bool = True
) -> list[Published]:
    """Write the run's tables into `folder` (the chronicle's data/), scrubbed.

    Args:
        store: the open store.
        run: the run's name.
        folder: where to write; created.
        scrub: redaction (and anonymization) for every string.
        samples: copy the telemetry samples too (they can be most of the bytes).

    Returns:
        The files written, with their row counts and sizes.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    out: list[Published] = []
    con = query.connect(store, run, gpu_samples=False)
    try:
        for table, view in VIEWS.items():
            # Batch by batch, so memory stays bounded: metrics and snapshots run to millions.
            reader = con.sql(f"select * from {view} where run = $run", params={"run": run})
            batches = reader.to_arrow_reader(1 << 18)
            path = folder / f"{table}.parquet"
            rows = 0
            with pq.ParquetWriter(path, batches.schema, compression="zstd") as writer:
                for batch in batches:
                    part = pa.Table.from_batches([batch], batches.schema)
                    writer.write_table(
                        scrub.table(part, named_by="name" if table == "snapshots" else None)
                    )
                    rows += batch.num_rows
            out.append(Published(table, f"data/{path.name}", rows, path.stat().st_size))
    finally:
        con.close()
    if samples:
        out.append(_samples(store, run, folder / "samples", scrub))
    (folder / "README.md").write_text(readme(run, out))
    return out


def _samples(store: Store, run: str, folder: Path, scrub: Scrubber) -> Published:
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    anon = scrub.anonymizer
    parts = [(src, folder / f"part-{i:05d}.parquet") for i, src in enumerate(store.part_files("samples", run))]  # fmt: skip
    if anon is None:
        for src, dest in parts:
            shutil.copyfile(src, dest)
        rows = sum(pq.ParquetFile(dest).metadata.num_rows for _, dest in parts)
    else:
        # Re-encoding is Arrow's C++ work, outside the GIL: one part per core at once.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            # Every host numbered first, in name order, so the stand-ins never depend on which
            # thread met a host the rest of the record does not name.
            names = set().union(*pool.map(lambda p: _hosts_in(p[0]), parts))
            for name in sorted(n for n in names if n is not None):
                anon.host(name)
            host = anon.host  # now only read, from any thread
            rows = sum(pool.map(lambda p: _rewrite_hosts(p[0], p[1], host), parts))
    size = sum(dest.stat().st_size for _, dest in parts)
    return Published("samples", "data/samples/", rows, size)


def _hosts_in(part: Path) -> set[str | None]:
    """The host names of one samples part (read as a dictionary: a few values, many rows)."""
    import pyarrow.parquet as pq

    column = pq.read_table(part, columns=["host"], read_dictionary=["host"]).column("host")
    names: set[str | None] = {None} if column.null_count else set()
    for chunk in column.chunks:
        names.update(chunk.dictionary.to_pylist())
    return names


def _rewrite_hosts(src: Path, dest: Path, host: Callable[[str | None], str | None]) -> int:
    """Copy one samples part with its host column mapped: its dictionary renamed, every other
    byte copied (#16); else re-encoded."""
    from logbook.chronicle.rename_values import rename_values

    rows = rename_values(src, dest, "host", host)
    return rows if rows is not None else _reencode_hosts(src, dest, host)


def _reencode_hosts(src: Path, dest: Path, host: Callable[[str | None], str | None]) -> int:
    """Copy one samples part with its host column mapped, batch by batch (bounded memory; the
    re-encoding costs about a minute per hundred million rows on two cores)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rows = 0
    with pq.ParquetFile(src) as part:
        schema = part.schema_arrow
        at = schema.get_field_index("host")
        with pq.ParquetWriter(dest, schema, compression="zstd") as out:
            for batch in part.iter_batches(batch_size=1 << 18):
                hosts = batch.column(at)
                names = pc.unique(hosts)
                stand_ins = pa.array([host(h) for h in names.to_pylist()], schema.field(at).type)
                mapped = pc.take(stand_ins, pc.index_in(hosts, value_set=names))
                out.write_batch(batch.set_column(at, schema.field(at), mapped))
                rows += batch.num_rows
    return rows


def readme(run: str, files: list[Published]) -> str:
    """data/README.md: what each file holds, how to query it, and the table reference."""
    lines = [
        f"# The data of run {run}",
        "",
        "Parquet files, readable by DuckDB, pandas, polars, Spark or Trino as they are. "
        "Every string was redacted again when the chronicle was built. "
        "The `run` column is absent from the samples' parts (the store keeps it in their folder name).",
        "",
        "| file | rows | bytes |",
        "|---|---|---|",
        *(f"| `{f.path}` | {f.rows:,} | {f.bytes:,} |" for f in files),
        "",
        "## Example queries",
        "",
        'Run them from this folder, e.g. `duckdb -c "..."` or `duckdb.sql("...")` in Python.',
        "",
    ]
    for title, sql in EXAMPLES:
        lines += [f"{title}:", "", "```sql", sql + ";", "```", ""]
    reference = schemas.reference_markdown().split("\n", 5)[-1]  # without its own title and intro
    return "\n".join(lines) + "\n# Tables\n" + reference
