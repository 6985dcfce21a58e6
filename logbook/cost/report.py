"""The cost report of a run: one row per attempt and a total, every figure with its basis.

One SQL statement over the views does it all: the samples are aggregated in DuckDB in one pass
(logbook.cost.energy), the launch snapshots give the GPU count and model, the price recorded by
`logbook run --gpu-price` and the declared compute figures (logbook.cost.compute), and the price
table (logbook.cost.prices) comes in as a parameter.

An attempt launched on several hosts (logbook.supervisor.nodes) is figured host by host, then
summed: each host's GPUs, over its own wall time (its `nodes` row), at the price of its GPU model,
with its energy from its own samples. A host is the one named in the snapshots, samples and node
rows; older rows without one belong to the attempt's host.

GPU count of a host: what its launch snapshot says (the `launch_gpus` view, logbook.query.gpu_count:
wrapped workers, the inventory, the launcher's variables), else the GPUs in its samples, else 0,
with the reason.

Price per GPU-hour, the first that applies: `--gpu-price`; the price `logbook run --gpu-price`
recorded for the attempt; `[cost] gpu-price` in logbook.toml; the price table entry that matches
the GPU's name. None: the money is unknown (null), never zero, and the basis says how to give it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from logbook import query
from logbook.cost import compute, energy, prices
from logbook.cost.settings import CostSettings
from logbook.query import gpu_count

if TYPE_CHECKING:
    import pyarrow as pa

    from logbook.store import Store

FIGURES = (
    "hours",
    "gpus",
    "gpu_h",
    "cost_usd",
    "gpu_kwh",
    "cpu_kwh",
    "ram_kwh",
    "energy_kwh",
    "co2_kg",
    "tokens",
    "flops",
    "tokens_reached",
    "flops_reached",
    "mfu",
)
HINT = "pass --gpu-price USD or set [cost] gpu-price in logbook.toml"

# The attempts of the run, and the host each belongs to unless a row says otherwise.
_ATTEMPTS = """
a as (
    select attempt_id, label, status, start_time, parent_id, first_step, last_step,
           resumed_from_step, s_per_step, coalesce(duration_s, epoch(now() - start_time)) as wall_s,
           coalesce(host, '') as a_host
    from attempt_pace where run = $run
),
ah as (
    select a.attempt_id, a.a_host, n.attempt_id is not null as multi
    from a left join (select distinct attempt_id from nodes where run = $run) n using (attempt_id)
)"""

# What the launch snapshots say of the whole attempt: the price given at launch, N and tokens.
_LAUNCH_ATTEMPT = f"""
sn_a as (
    select attempt_id,
        max(try_cast(value as double)) filter (where kind = 'cost' and name = 'gpu_price_usd_per_hour')
            as rec_price,
        {compute.snapshot_columns()}
    from snapshots
    where run = $run and value is not null and status = 'ok'
    group by attempt_id
)"""
# Every figure below, host by host: (attempt_id, hk) for each host of each attempt.
_GPUS = """coalesce(lg_gpus, case when gpus_sampled > 0 then gpus_sampled end, 0)"""
_GPUS_BASIS = """case
    when lg_gpus is not null then lg_gpus_basis
    when gpus_sampled > 0 then printf('telemetry: %d GPUs sampled', gpus_sampled)
    else 'unknown, counted as 0: no GPU inventory (--no-capture, or neither NVML nor nvidia-smi answered) and no launcher variables'
    end"""
_PRICE_BASIS = """case
    when $flag_price is not null then '--gpu-price'
    when rec_price is not null then 'recorded by logbook run --gpu-price'
    when $toml_price is not null then $toml_price_from
    else price_text end"""
_COST_BASIS = f"""case
    when gpu_h = 0 then 'no GPU-hours'
    when price is null then 'unknown: ' || case
        when gpu_name is null then 'GPU model not recorded'
        when spec_name is null then printf('"%s" is not in the price table', gpu_name)
        else printf('the price table has no price for %s', spec_name) end || '; {HINT}'
    else printf('GPU-hours × $%g per GPU-hour, %s', price, price_from) end"""


def _over_hosts(col: str) -> str:
    """SQL aggregate: one basis for an attempt from its hosts' bases."""
    return f"""case when count(*) = 1 then any_value({col})
        when count(distinct {col}) = 1 then printf('%d hosts, each: %s', count(*), any_value({col}))
        else string_agg(coalesce(nullif(hk, ''), 'host not recorded') || ': ' || {col}, '; '
                        order by hk) end"""


def _attempt_sql() -> str:
    """The per-attempt figures, as CTEs ending in `figures`: first host by host, then summed."""
    return f"""
{_ATTEMPTS},
{_LAUNCH_ATTEMPT},
sn_h as (
    select attempt_id, host as hk, * exclude (run, attempt_id, host)
    from launch_gpus where run = $run
),
{energy.samples_cte(gpu_count.HOST_KEY)},
nd as (
    select attempt_id, {gpu_count.HOST_KEY} as hk,
           max(coalesce(duration_s, epoch(now() - start_time))) as node_wall_s
    from nodes join ah using (attempt_id) where run = $run group by all
),
hs as (
    select attempt_id, a_host as hk from a
    union select attempt_id, hk from sn_h
    union select attempt_id, hk from gpu_energy
    union select attempt_id, hk from nd
),
gt as (select unnest($gpus, recursive := true)),
gm as (
    select sn_h.attempt_id, sn_h.hk, min(gt.ord) as ord
    from sn_h join gt on regexp_matches(sn_h.gpu_name, gt.match, 'i') group by all
),
h1 as (
    select a.* exclude (wall_s), hs.hk, coalesce(nd.node_wall_s, a.wall_s) as wall_s,
           sn_a.rec_price, sn_h.* exclude (attempt_id, hk, gpus, gpus_basis),
           ge.* exclude (attempt_id, hk), sn_h.gpus as lg_gpus, sn_h.gpus_basis as lg_gpus_basis,
           gt.name as spec_name, gt.usd_per_gpu_hour as table_price, gt.price_text, gt.tdp_w,
           gt.peak_tflops
    from a
    join hs using (attempt_id)
    left join sn_a using (attempt_id)
    left join sn_h using (attempt_id, hk)
    left join gpu_energy ge using (attempt_id, hk)
    left join nd using (attempt_id, hk)
    left join gm using (attempt_id, hk)
    left join gt on gt.ord = gm.ord
),
h2 as (
    select *, {_GPUS} as gpus, {_GPUS_BASIS} as gpus_basis,
           coalesce(cast($flag_price as double), rec_price, cast($toml_price as double), table_price)
               as price,
           {_PRICE_BASIS} as price_from
    from h1
),
h3 as (
    select *, gpus * wall_s / 3600 as gpu_h,
           {energy.GPU_KWH} as gpu_kwh,
           {energy.CPU_KWH} as cpu_kwh,
           {energy.RAM_KWH} as ram_kwh
    from h2
),
h4 as (
    select *, case when gpu_h = 0 then 0.0 else gpu_h * price end as cost_usd,
           {_COST_BASIS} as cost_basis, {energy.GPU_BASIS} as gpu_basis,
           {energy.RAM_BASIS} as ram_basis
    from h3
),
hp as (
    select attempt_id, count(*) as hosts, sum(gpus) as gpus, sum(gpu_h) as gpu_h,
           case when bool_and(cost_usd is not null) then sum(cost_usd) end as cost_usd,
           case when bool_and(gpu_kwh is not null) then sum(gpu_kwh) end as gpu_kwh,
           sum(cpu_kwh) as cpu_kwh, sum(ram_kwh) as ram_kwh,
           -- the peak of the attempt's GPUs, weighted by how many each host has
           case when bool_and(peak_tflops is not null or gpus = 0)
                then sum(peak_tflops * gpus) / nullif(sum(gpus), 0) end as peak_tflops,
           mode(spec_name) as spec_name, mode(gpu_name) as gpu_name,
           {_over_hosts("gpus_basis")} as gpus_basis,
           {_over_hosts("cost_basis")} as cost_basis,
           {_over_hosts("gpu_basis")} as gpu_basis,
           {_over_hosts("ram_basis")} as ram_basis
    from h4 group by attempt_id
),
p2 as (
    select a.*, hp.* exclude (attempt_id), sn_a.* exclude (attempt_id),
           coalesce(cast($params as double), snap_params) as n_params,
           coalesce(cast($params_from as varchar), snap_params_from) as n_params_from,
           coalesce(cast($tokens as double), snap_tokens) as tps,
           coalesce(cast($tokens_from as varchar), snap_tokens_from) as tps_from
    from a join hp using (attempt_id) left join sn_a using (attempt_id)
),
figures as (
    select *,
           (gpu_kwh + cpu_kwh + ram_kwh) * $pue as energy_kwh,
           (gpu_kwh + cpu_kwh + ram_kwh) * $pue * $intensity / 1000 as co2_kg,
           {compute.TOKENS} as tokens, {compute.FLOPS} as flops,
           {compute.TOKENS_REACHED} as tokens_reached, {compute.FLOPS_REACHED} as flops_reached,
           case when gpus > 0 and s_per_step > 0 then {compute.MFU} end as mfu,
           case when gpus > 0 and s_per_step > 0 then {compute.PEAK_FLOPS_WHILE_STEPPING} end
               as peak_flops_stepping,
           struct_pack(
               hours := case when status = 'running' then 'measured: launch to now, still running'
                             else 'measured: launch to end' end,
               gpus := gpus_basis,
               gpu_h := case when hosts > 1
                             then printf('GPUs × wall time, summed over %d hosts', hosts)
                             else 'GPUs × wall time' end,
               cost_usd := cost_basis,
               gpu_kwh := gpu_basis,
               cpu_kwh := {energy.CPU_BASIS}
                   || case when hosts > 1 then printf(', on each of %d hosts', hosts) else '' end,
               ram_kwh := ram_basis,
               energy_kwh := printf('(GPU + CPU + memory) × PUE %g (%s)', $pue, $pue_from),
               co2_kg := printf('energy × %g gCO2e/kWh (%s)', $intensity, $intensity_from),
               tokens := {compute.basis("tokens")},
               flops := {compute.basis("flops")},
               tokens_reached := {compute.basis("tokens_reached")},
               flops_reached := {compute.basis("flops_reached")},
               mfu := {compute.MFU_BASIS}
           ) as basis
    from p2
)"""


def _unknown_in(col: str, what: str) -> str:
    """SQL for the total row: the sum, or null with the attempts that lack `col`."""
    return f"""case when bool_and({col} is not null) then 'sum over the attempts'
        else 'unknown: ' || string_agg(label, ', ' order by start_time) filter (where {col} is null)
             || ' {what}' end"""


_REACHED = """coalesce(printf('at the furthest step, %d (attempt %s)', max(last_step),
                                arg_max(label, last_step)), 'unknown: no training step seen')"""
_TOTAL = f"""
select 'total' as attempt, null as status, null::integer as gpus,
       sum(wall_s) / 3600 as hours, sum(gpu_h) as gpu_h,
       case when bool_and(cost_usd is not null) then sum(cost_usd) end as cost_usd,
       case when bool_and(gpu_kwh is not null) then sum(gpu_kwh) end as gpu_kwh,
       sum(cpu_kwh) as cpu_kwh, sum(ram_kwh) as ram_kwh,
       case when bool_and(energy_kwh is not null) then sum(energy_kwh) end as energy_kwh,
       case when bool_and(co2_kg is not null) then sum(co2_kg) end as co2_kg,
       cast(sum(tokens) as bigint) as tokens, sum(flops) as flops,
       arg_max(tokens_reached, last_step) as tokens_reached,
       arg_max(flops_reached, last_step) as flops_reached,
       sum(flops) filter (where mfu is not null)
           / sum(peak_flops_stepping) filter (where mfu is not null) as mfu,
       struct_pack(
           hours := 'sum over the attempts',
           gpus := 'see each attempt',
           gpu_h := 'sum over the attempts',
           cost_usd := {_unknown_in("cost_usd", f"without a price; {HINT}")},
           gpu_kwh := {_unknown_in("gpu_kwh", "without GPU energy")},
           cpu_kwh := 'sum over the attempts',
           ram_kwh := 'sum over the attempts',
           energy_kwh := {_unknown_in("energy_kwh", "without GPU energy")},
           co2_kg := {_unknown_in("co2_kg", "without GPU energy")},
           tokens := 'sum over the attempts with steps seen, steps done again included',
           flops := 'sum over the attempts with steps seen, steps done again included',
           tokens_reached := {_REACHED},
           flops_reached := {_REACHED},
           mfu := 'FLOPs processed ÷ peak FLOPs of the GPUs while stepping, over the attempts with an MFU'
       ) as basis,
       2 as _o, null::timestamp with time zone as start_time
from figures"""


def cost_report(store: Store, run: str, settings: CostSettings | None = None) -> pa.Table:
    """GPU-hours, money, energy, CO2, tokens, FLOPs and MFU of each attempt of `run`, oldest
    first, and a last row `total`; `basis` says for each figure whether it was measured or
    estimated and from what. A figure that cannot be known is null, with the reason in `basis`.

    Raises:
        NoSuchRun: the store has no such run.
    """
    store.check_run(run)
    s = settings or CostSettings()
    columns = (
        "attempt, status, gpus, hours, gpu_h, cost_usd, gpu_kwh, cpu_kwh, ram_kwh, energy_kwh, "
        "co2_kg, tokens, flops, tokens_reached, flops_reached, mfu, basis"
    )
    attempts = (
        "select label as attempt, status, gpus, wall_s / 3600 as hours, gpu_h, cost_usd, gpu_kwh, "
        "cpu_kwh, ram_kwh, energy_kwh, co2_kg, tokens, flops, tokens_reached, flops_reached, mfu, "
        "basis, 1 as _o, start_time from figures"
    )
    sql = (
        f"with {_attempt_sql()} select {columns} from ({attempts} union all by name {_TOTAL}) "
        "order by _o, start_time, attempt"
    )
    return query.run_sql(store, sql, _params(run, s))


def _params(run: str, s: CostSettings) -> dict[str, Any]:
    flag_price = s.gpu_price.value if s.gpu_price.is_flag else None
    toml_price = None if s.gpu_price.is_flag else s.gpu_price.value
    return {
        "run": run,
        "gpus": prices.sql_rows(),
        "flag_price": flag_price,
        "toml_price": toml_price,
        "toml_price_from": None if toml_price is None else s.gpu_price.source,
        "pue": s.pue.value,
        "pue_from": s.pue.source,
        "intensity": s.carbon_intensity.value,
        "intensity_from": s.carbon_intensity.source,
        "params": s.params.value,
        "params_from": s.params.source,
        "tokens": s.tokens_per_step.value,
        "tokens_from": s.tokens_per_step.source,
    }


def basis_notes(report: pa.Table) -> list[str]:
    """The `basis` column of a report as lines for people: for each figure (figures that share
    their bases on one line), each distinct basis with the attempts it applies to."""
    rows = report.to_pylist()
    attempts = [r for r in rows if r["attempt"] != "total"]
    total = next((r for r in rows if r["attempt"] == "total"), None)
    merged: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for figure in FIGURES:
        groups: dict[str, list[str]] = {}
        for r in attempts:
            groups.setdefault(r["basis"][figure], []).append(r["attempt"])
        key = tuple(
            ("all attempts" if len(groups) == 1 and len(attempts) > 1 else _labels(labels), text)
            for text, labels in groups.items()
        )
        if total is not None and total["basis"][figure].startswith("unknown"):
            key += (("total", total["basis"][figure]),)
        merged.setdefault(key, []).append(figure)
    return [
        f"{', '.join(figures)}: {who}: {text}"
        for key, figures in merged.items()
        for who, text in key
    ]


def _labels(labels: list[str], most: int = 6) -> str:
    if len(labels) <= most:
        return " ".join(labels)
    return " ".join(labels[:most]) + f" and {len(labels) - most} more"
