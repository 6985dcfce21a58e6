"""The cost report of a run: one row per attempt and a total, every figure with its basis (#5).

One SQL statement over the views does it all: the samples are aggregated in DuckDB in one pass
(logbook.cost.energy), the launch snapshots give the GPU count and model, the price recorded by
`logbook run --gpu-price` and the declared compute figures (logbook.cost.compute), and the price
table (logbook.cost.prices) comes in as a parameter.

GPU count of an attempt, the first that applies: 1 when LOCAL_RANK is set (the wrapper runs one
worker of torchrun, DeepSpeed or accelerate) on a host with GPUs; the inventory at launch (gpu
`count`); the GPUs in its samples; the launcher's LOCAL_WORLD_SIZE, SLURM_GPUS_ON_NODE, or
WORLD_SIZE ÷ GROUP_WORLD_SIZE (or SLURM_NNODES); else 0, with the reason. Each wrapper counts the
GPUs of its own host, so a run over several hosts sums them.

Price per GPU-hour, the first that applies: `--gpu-price`; the price `logbook run --gpu-price`
recorded for the attempt; `[cost] gpu-price` in logbook.toml; the price table entry that matches
the GPU's name. None: the money is unknown (null), never zero, and the basis says how to give it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from logbook import query
from logbook.cost import compute, energy, prices
from logbook.cost.settings import CostSettings

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

_LAUNCH = f"""
sn as (
    select attempt_id,
        max(try_cast(value as integer)) filter (where kind = 'gpu' and name = 'count') as inv_gpus,
        mode(value) filter (where kind = 'gpu' and name like '%.name') as gpu_name,
        max(try_cast(value as double)) filter (where kind = 'cost' and name = 'gpu_price_usd_per_hour')
            as rec_price,
        max(try_cast(value as double)) filter (where kind = 'host' and name = 'memory_bytes')
            as mem_snapshot,
        coalesce(bool_or(regexp_matches(value, 'aarch64|arm64', 'i'))
                 filter (where kind = 'host' and name = 'os'), false) as is_arm,
        coalesce(bool_or(kind = 'launcher' and name = 'LOCAL_RANK'), false) as worker,
        max(try_cast(value as integer)) filter (where kind = 'launcher' and name = 'LOCAL_WORLD_SIZE')
            as local_world,
        max(try_cast(value as integer)) filter (where kind = 'launcher' and name = 'SLURM_GPUS_ON_NODE')
            as slurm_gpus,
        max(try_cast(value as integer)) filter (where kind = 'launcher' and name = 'WORLD_SIZE') as world,
        max(try_cast(value as integer)) filter (where kind = 'launcher'
            and name in ('GROUP_WORLD_SIZE', 'SLURM_NNODES', 'SLURM_JOB_NUM_NODES')) as nodes,
        {compute.snapshot_columns()}
    from snapshots
    where run = $run and value is not null and status = 'ok'
    group by attempt_id
)"""

_GPUS = """case
    when worker and coalesce(inv_gpus, 1) > 0 then 1
    when inv_gpus is not null then inv_gpus
    when gpus_sampled > 0 then gpus_sampled
    when local_world > 0 then local_world
    when slurm_gpus > 0 then slurm_gpus
    when world > 0 then world // greatest(coalesce(nodes, 1), 1)
    else 0 end"""
_GPUS_BASIS = """case
    when worker and coalesce(inv_gpus, 1) > 0
        then 'launcher: LOCAL_RANK is set, the wrapper runs one worker: 1 GPU'
    when inv_gpus = 0 then 'inventory at launch: no GPU'
    when inv_gpus is not null
        then printf('inventory at launch: %d × %s', inv_gpus, coalesce(gpu_name, 'GPU, model not recorded'))
    when gpus_sampled > 0 then printf('telemetry: %d GPUs sampled', gpus_sampled)
    when local_world > 0 then 'launcher: LOCAL_WORLD_SIZE (one GPU per local worker)'
    when slurm_gpus > 0 then 'launcher: SLURM_GPUS_ON_NODE'
    when world > 0 then printf('launcher: WORLD_SIZE %d ÷ %d nodes', world, greatest(coalesce(nodes, 1), 1))
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


def _attempt_sql() -> str:
    """The per-attempt figures, as CTEs ending in `figures`."""
    return f"""
a as (
    select attempt_id, label, status, start_time, parent_id, first_step, last_step,
           resumed_from_step, s_per_step, coalesce(duration_s, epoch(now() - start_time)) as wall_s
    from attempt_pace where run = $run
),
{_LAUNCH},
{energy.SAMPLES_CTE},
gt as (select unnest($gpus, recursive := true)),
gm as (
    select sn.attempt_id, min(gt.ord) as ord
    from sn join gt on regexp_matches(sn.gpu_name, gt.match, 'i') group by sn.attempt_id
),
p1 as (
    select a.*, sn.* exclude (attempt_id), ge.* exclude (attempt_id),
           sn.mem_snapshot as mem_bytes,
           gt.name as spec_name, gt.usd_per_gpu_hour as table_price, gt.price_text, gt.tdp_w,
           gt.peak_tflops
    from a
    left join sn on sn.attempt_id = a.attempt_id
    left join gpu_energy ge on ge.attempt_id = a.attempt_id
    left join gm on gm.attempt_id = a.attempt_id
    left join gt on gt.ord = gm.ord
),
p2 as (
    select *, {_GPUS} as gpus, {_GPUS_BASIS} as gpus_basis,
           coalesce(cast($flag_price as double), rec_price, cast($toml_price as double), table_price)
               as price,
           {_PRICE_BASIS} as price_from,
           coalesce(cast($params as double), snap_params) as n_params,
           coalesce(cast($params_from as varchar), snap_params_from) as n_params_from,
           coalesce(cast($tokens as double), snap_tokens) as tps,
           coalesce(cast($tokens_from as varchar), snap_tokens_from) as tps_from
    from p1
),
p3 as (
    select *, gpus * wall_s / 3600 as gpu_h,
           {energy.GPU_KWH} as gpu_kwh,
           {energy.CPU_KWH} as cpu_kwh,
           {energy.RAM_KWH} as ram_kwh
    from p2
),
figures as (
    select *,
           case when gpu_h = 0 then 0.0 else gpu_h * price end as cost_usd,
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
               gpus := {_GPUS_BASIS},
               gpu_h := 'GPUs × wall time',
               cost_usd := {_COST_BASIS},
               gpu_kwh := {energy.GPU_BASIS},
               cpu_kwh := {energy.CPU_BASIS},
               ram_kwh := {energy.RAM_BASIS},
               energy_kwh := printf('(GPU + CPU + memory) × PUE %g (%s)', $pue, $pue_from),
               co2_kg := printf('energy × %g gCO2e/kWh (%s)', $intensity, $intensity_from),
               tokens := {compute.basis("tokens")},
               flops := {compute.basis("flops")},
               tokens_reached := {compute.basis("tokens_reached")},
               flops_reached := {compute.basis("flops_reached")},
               mfu := {compute.MFU_BASIS}
           ) as basis
    from p3
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
