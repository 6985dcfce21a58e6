"""What a run is doing now, read from the store alone: the state `logbook watch` draws.

`watch_state` is called every couple of seconds, possibly from another host that shares the store,
on stores of a hundred million samples: it reads the current attempt's newest samples (a window
of a few minutes: DuckDB skips the parts and row groups whose time statistics fall outside it),
the last points of each metric and the last events, never a whole table.

How fresh it is follows what the wrappers write: metrics every 10 s, samples every 60 s
(logbook/supervisor/recorder.py, logbook/telemetry/sampler.py), an attempt's start and end at
once.

>>> state = watch_state(Store.open(Path(".logbook")))
>>> state.run, state.attempt, state.step, state.rate
('gpt', '1.02', 1480, 2.5)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from logbook.cost import compute
from logbook.errors import LogbookError, StoreCorrupt

if TYPE_CHECKING:
    import duckdb

    from logbook.store import Store

RATE_WINDOW_S = 60.0  # steps/s over the newest minute of steps...
RATE_MIN_STEPS = 5  # ...or over the newest few steps, when they span longer
SAMPLE_WINDOW_S = 300.0  # samples are written once a minute; hosts' clocks may differ a little
# Where a training declares how far it goes: the last part of a config, argument or
# logbook.config name ('-' read as '_'), under no prefix or one of these.
TARGET_STEP_NAMES = (
    "max_steps",
    "total_steps",
    "train_steps",
    "num_train_steps",
    "max_train_steps",
    "training_steps",
    "num_steps",
    "steps",
    "max_iters",
    "train_iters",
    "total_iters",
)
# fairseq's max_tokens is a batch size, so it is not here.
TARGET_TOKEN_NAMES = ("total_tokens", "train_tokens", "target_tokens", "num_train_tokens")
_PREFIXES = ("", "train.", "training.", "trainer.", "optimization.", "optim.", "scheduler.")


@dataclass
class GpuReading:
    """The newest reading of one GPU."""

    host: str | None
    index: int | None
    time: datetime
    util_pct: float | None
    power_w: float | None
    mem_used_bytes: int | None
    mem_total_bytes: int | None
    temperature_c: float | None


@dataclass
class HostReading:
    """The newest readings of one host: the command's process tree and the machine."""

    host: str | None
    time: datetime
    cpu_pct: float | None  # the process tree, in % of one core
    rss_bytes: int | None
    host_cpu_pct: float | None  # the machine, in % of all cores
    mem_used_bytes: int | None
    mem_total_bytes: int | None


@dataclass
class GpuSummary:
    """The newest GPU readings summed up: count, utilization and power spread, memory in all."""

    gpus: int
    hosts: int
    util_mean: float | None
    util_min: float | None
    util_max: float | None
    power_mean_w: float | None
    power_total_w: float | None
    mem_used_bytes: int | None
    mem_total_bytes: int | None
    temperature_max_c: float | None


@dataclass
class WatchEvent:
    time: datetime
    step: int | None
    kind: str
    severity: str
    message: str | None


@dataclass
class WatchState:
    """One frame of `logbook watch`: plain values, times in UTC."""

    run: str
    now: datetime
    attempt: str | None = None  # label of the current attempt
    attempt_id: str | None = None
    status: str | None = None
    host: str | None = None
    started: datetime | None = None
    ended: datetime | None = None
    age_s: float | None = None  # since the start (to the end, once it ended)
    summary: str | None = None  # how it ended
    resumed_from: int | None = None
    step: int | None = None
    step_time: datetime | None = None  # when the newest step was seen
    rate: float | None = None  # steps per second, recently
    target: int | None = None  # steps
    target_from: str | None = None  # where the target was declared
    eta_s: float | None = None
    metrics: dict[str, list[float]] = field(default_factory=dict)  # oldest first
    metrics_attempt: str | None = None  # label of the attempt they are from
    more_metrics: int = 0  # names left out
    gpus: list[GpuReading] = field(default_factory=list)
    hosts: list[HostReading] = field(default_factory=list)
    attempts: int = 0
    restarts: int = 0
    incidents: dict[str, int] = field(default_factory=dict)  # class -> count, most first
    events: list[WatchEvent] = field(default_factory=list)  # oldest first

    @property
    def gpu_summary(self) -> GpuSummary | None:
        """The GPUs' newest readings summed up; None without any."""
        if not self.gpus:
            return None

        def known(values: list[Any]) -> list[Any]:
            return [v for v in values if v is not None and not _nan(v)]

        util = known([g.util_pct for g in self.gpus])
        power = known([g.power_w for g in self.gpus])
        used = known([g.mem_used_bytes for g in self.gpus])
        total = known([g.mem_total_bytes for g in self.gpus])
        temp = known([g.temperature_c for g in self.gpus])
        return GpuSummary(
            gpus=len(self.gpus),
            hosts=len({g.host for g in self.gpus}),
            util_mean=sum(util) / len(util) if util else None,
            util_min=min(util, default=None),
            util_max=max(util, default=None),
            power_mean_w=sum(power) / len(power) if power else None,
            power_total_w=sum(power) if power else None,
            mem_used_bytes=sum(used) if used else None,
            mem_total_bytes=sum(total) if total else None,
            temperature_max_c=max(temp, default=None),
        )


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def watch_state(
    store: Store,
    run: str | None = None,
    *,
    target_steps: int | None = None,
    metrics: tuple[str, ...] | list[str] = (),
    max_metrics: int = 8,
    points: int = 30,
    events: int = 8,
) -> WatchState:
    """The state of `run` now: its current attempt, step, pace, metrics, machines and incidents.

    Args:
        run: the run to look at; None picks the run whose latest attempt is running (the most
            recently started), else the run started last.
        target_steps: the step the training ends at, over what its config declares.
        metrics: the metric names to follow; empty: loss-like names first, then the rest by name,
            at most `max_metrics` of them.
        points: the newest points kept per metric.
        events: how many of the run's newest events to keep.

    Returns:
        A WatchState of plain values.

    Raises:
        NoSuchRun: the store has no such run.
        LogbookError: the store holds no run yet.
        StoreCorrupt: the store could not be read even after setting damaged parts aside.
    """
    import duckdb

    from logbook.query import connect

    if run is not None:
        store.check_run(run)
    elif not store.run_names():
        raise LogbookError(
            f"no runs in {store.where} yet", hint='start one with "logbook run --run NAME -- CMD"'
        )
    error: Exception | None = None
    for tries in range(3):
        # A compaction may delete parts between the listing and the read: list again. A part
        # that looked whole may be damaged inside: check them all before the last try.
        if tries == 2:
            store.check_all_parts()
        try:
            con = connect(store, run, gpu_samples=False)
        except duckdb.InterruptException:  # Ctrl-C, not the store's fault
            raise
        except duckdb.Error as e:
            error = e
            continue
        try:
            return _read_state(con, run, target_steps, list(metrics), max_metrics, points, events)
        except duckdb.InterruptException:
            raise
        except duckdb.Error as e:
            error = e
        finally:
            con.close()
    raise StoreCorrupt(f"cannot read {store.where}: {error}", hint='run "logbook doctor"')


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _read_state(
    con: duckdb.DuckDBPyConnection,
    run: str | None,
    target_steps: int | None,
    metrics: list[str],
    max_metrics: int,
    points: int,
    events: int,
) -> WatchState:
    if run is None:
        picked = _rows(
            con,
            """
            select run from attempts group by run
            order by bool_or(status = 'running') desc, max(start_time) desc limit 1
            """,
            {},
        )
        # A store whose runs have rows but no attempt yet (notes imported ahead).
        run = picked[0]["run"] if picked else _any_run(con)
    now = datetime.now(timezone.utc)
    state = WatchState(run=run, now=now)
    p = {"run": run}
    counts = _rows(
        con,
        # restarts within a lineage (lineages.py): a new lineage is a decision
        "select count(*) as n, count(*) filter (where is_restart) as restarts "
        "from attempt_lineage where run = $run",
        p,
    )[0]
    state.attempts, state.restarts = counts["n"], counts["restarts"]
    state.incidents = {
        r["class"]: r["n"]
        for r in _rows(
            con,
            "select class, count(*) as n from incidents where run = $run group by class "
            "order by n desc, class",
            p,
        )
    }
    state.events = [
        WatchEvent(**r)
        for r in reversed(
            _rows(
                con,
                "select time, step, kind, severity, message from events where run = $run "
                "order by time desc limit $n",
                {**p, "n": events},
            )
        )
    ]
    current = _rows(
        con,
        """
        select * from attempts where run = $run
        order by status = 'running' desc, start_time desc limit 1
        """,
        p,
    )
    if not current:
        return state
    a = current[0]
    state.attempt, state.attempt_id, state.status = a["label"], a["attempt_id"], a["status"]
    state.host, state.started, state.ended = a["host"], a["start_time"], a["end_time"]
    state.summary, state.resumed_from = a["summary"], a["resumed_from_step"]
    state.age_s = max(((state.ended or now) - state.started).total_seconds(), 0.0)
    _read_steps(con, state, a)
    _read_target(con, state, target_steps)
    if state.status == "running" and state.target and state.rate and state.step is not None:
        state.eta_s = max(state.target - state.step, 0) / state.rate
    _read_metrics(con, state, a, metrics, max_metrics, points)
    _read_samples(con, state, now)
    return state


def _any_run(con: duckdb.DuckDBPyConnection) -> str:
    rows = _rows(
        con,
        "select run from (select run, time from events union all select run, time from metrics) "
        "group by run order by max(time) desc limit 1",
        {},
    )
    if not rows:
        raise LogbookError("the store holds no run yet")
    return str(rows[0]["run"])


def _read_steps(con: duckdb.DuckDBPyConnection, state: WatchState, a: dict[str, Any]) -> None:
    """The newest step and the pace: steps over seconds across the newest minute of steps, or
    across the newest few steps when they are slower than that."""
    rows = _rows(
        con,
        """
        with p as (select step, min(time) as t from metrics
                   where run = $run and attempt_id = $a and step is not null group by step),
             r as (select step, t, row_number() over (order by t desc, step desc) as k,
                          max(t) over () as newest from p)
        select arg_max(step, t) as step, max(t) as t, arg_min(step, t) as step0, min(t) as t0
        from r where t >= newest - $window or k <= $few
        """,
        {
            "run": state.run,
            "a": state.attempt_id,
            "window": timedelta(seconds=RATE_WINDOW_S),
            "few": RATE_MIN_STEPS,
        },
    )
    r = rows[0]
    state.step, state.step_time = r["step"], r["t"]
    if r["step"] is not None and r["t"] > r["t0"] and r["step"] > r["step0"]:
        state.rate = (r["step"] - r["step0"]) / (r["t"] - r["t0"]).total_seconds()
    # The attempt's own row has the last step once it ended (lines with a step and no metric).
    if a["last_step"] is not None and (state.step is None or a["last_step"] > state.step):
        state.step, state.step_time = a["last_step"], a["last_step_time"]


def _declared_names(names: tuple[str, ...]) -> list[str]:
    return [prefix + name for name in names for prefix in _PREFIXES]


def _read_target(
    con: duckdb.DuckDBPyConnection, state: WatchState, target_steps: int | None
) -> None:
    """The step the training ends at: given, else declared in the current attempt's settings (or
    the newest attempt's that declares one): steps, or tokens over tokens per step."""
    if target_steps is not None:
        state.target, state.target_from = target_steps, "--target-steps"
        return
    steps, tokens, per_step = (
        _declared_names(TARGET_STEP_NAMES),
        _declared_names(TARGET_TOKEN_NAMES),
        list(compute.TOKENS_NAMES),
    )
    rows = _rows(
        con,
        f"""
        select attempt_id, time, kind, name, lower(replace(name, '-', '_')) as key,
               {compute.number("value")} as value
        from snapshots
        where run = $run and kind in ('api_config', 'config', 'arg')
          and list_contains($names, lower(replace(name, '-', '_')))
        """,
        {"run": state.run, "names": steps + tokens + per_step},
    )
    rows = [r for r in rows if r["value"] is not None and r["value"] > 0]
    kinds = list(compute.KINDS)
    newest: dict[str, datetime] = {}  # each attempt's snapshot time: the newest attempt first
    for r in rows:
        newest[r["attempt_id"]] = max(r["time"], newest.get(r["attempt_id"], r["time"]))

    def best(names: list[str]) -> dict[str, Any] | None:
        found = [r for r in rows if r["key"] in names]
        found.sort(
            key=lambda r: (
                r["attempt_id"] != state.attempt_id,
                -newest[r["attempt_id"]].timestamp(),
                kinds.index(r["kind"]),
                names.index(r["key"]),
            )
        )
        return found[0] if found else None

    declared = best(steps)
    if declared is not None:
        state.target = int(declared["value"])
        state.target_from = f"{declared['kind']} {declared['name']}"
        return
    total, each = best(tokens), best(per_step)
    if total is not None and each is not None:
        state.target = math.ceil(total["value"] / each["value"])
        state.target_from = f"{total['kind']} {total['name']} / {each['kind']} {each['name']}"


def _read_metrics(
    con: duckdb.DuckDBPyConnection,
    state: WatchState,
    a: dict[str, Any],
    names: list[str],
    max_metrics: int,
    points: int,
) -> None:
    """The newest points of each metric of the current attempt; of the one before it while the
    current one has none yet (just restarted)."""
    rows: list[dict[str, Any]] = []
    for attempt_id, label in ((a["attempt_id"], a["label"]), (a["parent_id"], a["parent_label"])):
        if attempt_id is not None and not rows:
            rows = _rows(
                con,
                """
                select name, list(value order by time, step) as points from (
                    select name, value, time, step, row_number() over (
                        partition by name order by time desc, step desc nulls last) as n
                    from metrics
                    where run = $run and attempt_id = $a
                      and (len($names) = 0 or list_contains($names, name))
                ) where n <= $points group by name
                """,
                {"run": state.run, "a": attempt_id, "names": names, "points": points},
            )
            state.metrics_attempt = label if rows else None
    found = {r["name"]: r["points"] for r in rows}
    if names:
        order = [n for n in names if n in found]
    else:
        order = sorted(found, key=lambda n: (n != "loss", "loss" not in n, n))
    state.metrics = {n: found[n] for n in order[:max_metrics]}
    state.more_metrics = max(len(order) - max_metrics, 0)


def _read_samples(con: duckdb.DuckDBPyConnection, state: WatchState, now: datetime) -> None:
    """The newest reading of each GPU and host of the current attempt, from its last minutes."""
    assert state.started is not None
    upto = state.ended or now
    since = max(upto - timedelta(seconds=SAMPLE_WINDOW_S), state.started)
    rows = _rows(
        con,
        """
        select host, scope, gpu_index, max(time) as time,
               arg_max(cpu_pct, time) as cpu_pct, arg_max(rss_bytes, time) as rss_bytes,
               arg_max(mem_used_bytes, time) as mem_used_bytes,
               arg_max(mem_total_bytes, time) as mem_total_bytes,
               arg_max(gpu_util_pct, time) as gpu_util_pct, arg_max(power_w, time) as power_w,
               arg_max(gpu_mem_used_bytes, time) as gpu_mem_used_bytes,
               arg_max(gpu_mem_total_bytes, time) as gpu_mem_total_bytes,
               arg_max(temperature_c, time) as temperature_c
        from samples
        where run = $run and attempt_id = $a and time >= $since
        group by host, scope, gpu_index
        order by host nulls first, gpu_index
        """,
        {"run": state.run, "a": state.attempt_id, "since": since},
    )
    hosts: dict[str | None, HostReading] = {}
    for r in rows:
        if r["scope"] == "gpu":
            state.gpus.append(
                GpuReading(
                    host=r["host"],
                    index=r["gpu_index"],
                    time=r["time"],
                    util_pct=r["gpu_util_pct"],
                    power_w=r["power_w"],
                    mem_used_bytes=r["gpu_mem_used_bytes"],
                    mem_total_bytes=r["gpu_mem_total_bytes"],
                    temperature_c=r["temperature_c"],
                )
            )
            continue
        h = hosts.setdefault(r["host"], HostReading(r["host"], r["time"], *(None,) * 5))
        h.time = max(h.time, r["time"])
        if r["scope"] == "process":
            h.cpu_pct, h.rss_bytes = r["cpu_pct"], r["rss_bytes"]
        elif r["scope"] == "host":
            h.host_cpu_pct = r["cpu_pct"]
            h.mem_used_bytes, h.mem_total_bytes = r["mem_used_bytes"], r["mem_total_bytes"]
    state.hosts = list(hosts.values())
