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
wrapped workers, the inventory, the launcher's variables), else the GPUs in its samples, else
unknown (null): then its GPU-hours, money and energy are unknown too, never 0 (#16). Only an
inventory that found no GPU makes 0.

Every basis starts with its kind, measured, declared, estimated or unknown (logbook.cost.basis); a
figure made from others has the weakest of theirs. A total over attempts of which some are
unknown is unknown, and its basis names them and the known part ("at least X over the N of M
attempts known"), so that no unknown enters a sum as zero.

Price per GPU-hour, the first that applies: `--gpu-price`; the price `logbook run --gpu-price`
recorded for the attempt; `[cost] gpu-price` in logbook.toml; the price table entry that matches
the GPU's name. None: the money is unknown (null), never zero, and the basis says how to give it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from logbook import query
from logbook.cost import basis, compute, energy, prices
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
           resumed_from_step, s_per_step, wall_s,  -- attempt_time.py: to its end, now or last evidence
           coalesce(host, '') as a_host,
           case when wall_s is null
                    then 'unknown: its start or end is known only to the ' || concat_ws(' and ',
                         start_precision, case when end_precision <> start_precision
                                               or start_precision is null then end_precision end)
                when wrapper_pid is not null and end_time is null
                    then 'measured: launch to now, still running'
                when wrapper_pid is not null then 'measured: launch to end'
                when is_open then 'declared: imported start, to its last evidence (open: no end on record)'
                else 'declared: start to end, as imported' end as hours_basis
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
    -- only the kinds read below: the aggregates' arguments are worked out before their filters
    where run = $run and value is not null and status = 'ok'
      and kind in ('cost', {", ".join(f"'{k}'" for k in compute.KINDS)})
    group by attempt_id
)"""
# Every figure below, host by host: (attempt_id, hk) for each host of each attempt.
_GPUS = """coalesce(lg_gpus, case when gpus_sampled > 0 then gpus_sampled end)"""
_GPUS_BASIS = """case
    when lg_gpus is not null then lg_gpus_basis
    when gpus_sampled > 0 then printf('measured: telemetry: %d GPUs sampled', gpus_sampled)
    else 'unknown: no GPU inventory, launcher variables or GPU samples on record for this attempt '
         || '(imported, run with --no-capture, or neither NVML nor nvidia-smi answered)'
    end"""
_GPU_H_BASIS = f"""case when gpus is null then 'unknown: GPU count unknown'
    else {basis.weakest("gpus_basis", "hours_basis")} || ': GPUs × wall time' end"""
_PRICE_KIND = "case when coalesce($flag_price, rec_price, $toml_price) is null then 'estimated' else 'declared' end"
_PRICE_BASIS = """case
    when $flag_price is not null then '--gpu-price'
    when rec_price is not null then 'recorded by logbook run --gpu-price'
    when $toml_price is not null then $toml_price_from
    else price_text end"""
_COST_BASIS = f"""case
    when gpus is null then 'unknown: GPU count unknown'
    when gpus = 0 then 'measured: no GPU at launch, no GPU-hours to price'
    when price is null then 'unknown: ' || case
        when gpu_name is null then 'GPU model not recorded'
        when spec_name is null then printf('"%s" is not in the price table', gpu_name)
        else printf('the price table has no price for %s', spec_name) end || '; {HINT}'
    else printf('%s: GPU-hours × $%g per GPU-hour, %s', {basis.weakest("gpu_h_basis", "price_kind")},
                price, price_from) end"""

_PARTS = (("gpu", "GPU"), ("cpu", "CPU"), ("ram", "memory"))
_ENERGY_BASIS = f"""case when gpu_kwh is null or cpu_kwh is null or ram_kwh is null then 'unknown: ' || concat_ws(', ',
        {", ".join(f"case when {p}_kwh is null then '{n} energy unknown' end" for p, n in _PARTS)})
    else printf('%s: ({" + ".join(f"{n} %s" for _, n in _PARTS)}) × PUE %g (%s)',
                {basis.weakest(*(f"{p}_basis" for p, _ in _PARTS), "$pue_kind")},
                {", ".join(f"split_part({p}_basis, ':', 1)" for p, _ in _PARTS)}, $pue, $pue_from)
    end"""
_CO2_BASIS = f"""case when energy_kwh is null then 'unknown: energy unknown'
    else printf('%s: energy × %g gCO2e/kWh (%s)', {basis.weakest("energy_basis", "$intensity_kind")},
                $intensity, $intensity_from) end"""


def _over_hosts(col: str) -> str:
    """SQL aggregate: one basis for an attempt from its hosts' bases, the weakest kind first."""
    kind = basis.weakest_over(col)
    return f"""case when count(*) = 1 then any_value({col})
        when count(distinct {col}) = 1
            then printf('%s: %d hosts, each: %s', {kind}, count(*), {basis.without_kind(f"any_value({col})")})
        else {kind} || ': ' || string_agg(coalesce(nullif(hk, ''), 'host not recorded') || ': ' || {col},
                                         '; ' order by hk, {col}) end"""


def _sum_if_known(col: str) -> str:
    """SQL aggregate: the sum, or null when a row's `col` is unknown (never summed as 0)."""
    return f"case when bool_and({col} is not null) then sum({col}) end"


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
gm as (  -- each GPU model matched once, not once per host (25,600 hosts: 5 s of regexes, #16)
    select n.gpu_name, min(gt.ord) as ord
    from (select distinct gpu_name from sn_h) n join gt on regexp_matches(n.gpu_name, gt.match, 'i')
    group by all
),
h1 as (
    select a.* exclude (wall_s), hs.hk, coalesce(nd.node_wall_s, a.wall_s) as wall_s,
           sn_a.rec_price, sn_h.* exclude (attempt_id, hk, gpus, gpus_basis, host_known),
           coalesce(sn_h.host_known, false) as host_known,
           ge.* exclude (attempt_id, hk), sn_h.gpus as lg_gpus, sn_h.gpus_basis as lg_gpus_basis,
           gt.name as spec_name, gt.usd_per_gpu_hour as table_price, gt.price_text, gt.tdp_w,
           gt.peak_tflops
    from a
    join hs using (attempt_id)
    left join sn_a using (attempt_id)
    left join sn_h using (attempt_id, hk)
    left join gpu_energy ge using (attempt_id, hk)
    left join nd using (attempt_id, hk)
    left join gm on gm.gpu_name = sn_h.gpu_name
    left join gt on gt.ord = gm.ord
),
h2 as (
    select *, {_GPUS} as gpus, {_GPUS_BASIS} as gpus_basis,
           coalesce(cast($flag_price as double), rec_price, cast($toml_price as double), table_price)
               as price,
           {_PRICE_BASIS} as price_from, {_PRICE_KIND} as price_kind
    from h1
),
h3 as (
    select *, gpus * wall_s / 3600 as gpu_h, {_GPU_H_BASIS} as gpu_h_basis,
           {energy.GPU_KWH} as gpu_kwh,
           {energy.CPU_KWH} as cpu_kwh,
           {energy.RAM_KWH} as ram_kwh
    from h2
),
h4 as (
    select *, case when gpus = 0 then 0.0 else gpu_h * price end as cost_usd,
           {_COST_BASIS} as cost_basis, {energy.GPU_BASIS} as gpu_basis,
           {energy.CPU_BASIS} as cpu_basis, {energy.RAM_BASIS} as ram_basis
    from h3
),
hp as (
    select attempt_id, count(*) as hosts, {_sum_if_known("gpus")} as gpus,
           {_sum_if_known("gpu_h")} as gpu_h, {_sum_if_known("cost_usd")} as cost_usd,
           {_sum_if_known("gpu_kwh")} as gpu_kwh, {_sum_if_known("cpu_kwh")} as cpu_kwh,
           {_sum_if_known("ram_kwh")} as ram_kwh,
           -- the peak of the attempt's GPUs, weighted by how many each host has
           case when bool_and(peak_tflops is not null or gpus = 0)
                then sum(peak_tflops * gpus) / nullif(sum(gpus), 0) end as peak_tflops,
           mode(spec_name) as spec_name, mode(gpu_name) as gpu_name,
           {_over_hosts("gpus_basis")} as gpus_basis,
           {_over_hosts("gpu_h_basis")} as gpu_h_basis,
           {_over_hosts("cost_basis")} as cost_basis,
           {_over_hosts("gpu_basis")} as gpu_basis,
           {_over_hosts("cpu_basis")} as cpu_basis,
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
p3 as (
    select *, (gpu_kwh + cpu_kwh + ram_kwh) * $pue as energy_kwh, {_ENERGY_BASIS} as energy_basis
    from p2
),
figures as (
    select *, wall_s / 3600 as hours,
           energy_kwh * $intensity / 1000 as co2_kg,
           {compute.TOKENS} as tokens, {compute.FLOPS} as flops,
           {compute.TOKENS_REACHED} as tokens_reached, {compute.FLOPS_REACHED} as flops_reached,
           case when gpus > 0 and s_per_step > 0 then {compute.MFU} end as mfu,
           case when gpus > 0 and s_per_step > 0 then {compute.PEAK_FLOPS_WHILE_STEPPING} end
               as peak_flops_stepping,
           struct_pack(
               hours := hours_basis,
               gpus := gpus_basis,
               gpu_h := gpu_h_basis,
               cost_usd := cost_basis,
               gpu_kwh := gpu_basis,
               cpu_kwh := cpu_basis,
               ram_kwh := ram_basis,
               energy_kwh := energy_basis,
               co2_kg := {_CO2_BASIS},
               tokens := {compute.basis("tokens")},
               flops := {compute.basis("flops")},
               tokens_reached := {compute.basis("tokens_reached")},
               flops_reached := {compute.basis("flops_reached")},
               mfu := {compute.MFU_BASIS}
           ) as basis
    from p3
)"""


def _summed(col: str, what: str) -> str:
    """SQL for the total row's basis of a sum: the weakest kind of the attempts' figures; or, when
    an attempt's is unknown, unknown, naming those attempts and the part that is known."""
    known = f"count({col})"
    return f"""case when bool_and({col} is not null)
            then {basis.weakest_over(f"basis.{col}")} || ': sum over the attempts'
        else 'unknown: ' || string_agg(label, ', ' order by start_time, label) filter (where {col} is null)
             || ' without {what}'
             || case when {known} > 0 then printf('; at least %.6g over the %d of %d attempts known',
                                                  sum({col}), {known}, count(*)) else '' end
        end"""


def _over_steps_seen(col: str, kind: str) -> str:
    """SQL for the total row's basis of tokens or FLOPs: unknown when no attempt has them."""
    return f"""case when count({col}) = 0
            then 'unknown: ' || {basis.without_kind(f"arg_min(basis.{col}, start_time)")}
        else printf('{kind}: sum over the %d of %d attempts with steps seen, steps done again '
                    || 'included', count({col}), count(*)) end"""


_REACHED = """coalesce(printf('declared: at the furthest step, %d (attempt %s)', max(last_step),
                                arg_max(label, last_step)), 'unknown: no training step seen')"""
_SUMS = {
    "hours": "a known wall time",
    "gpu_h": "GPU-hours",
    "cost_usd": "a price or GPU-hours",
    "gpu_kwh": "GPU energy",
    "cpu_kwh": "CPU energy",
    "ram_kwh": "memory energy",
    "energy_kwh": "energy",
    "co2_kg": "energy",
}
_TOTAL_BASES = {
    **{c: _summed(c, what) for c, what in _SUMS.items()},
    "gpus": "'see each attempt'",
    "tokens": _over_steps_seen("tokens", "declared"),
    "flops": _over_steps_seen("flops", "estimated"),
    "tokens_reached": _REACHED,
    "flops_reached": _REACHED,
    "mfu": "case when count(mfu) = 0 then 'unknown: no attempt has an MFU' "
    "else 'estimated: FLOPs processed ÷ peak FLOPs of the GPUs while stepping, "
    "over the attempts with an MFU' end",
}
_TOTAL = f"""
select 'total' as attempt, null as status, null::integer as gpus,
       {", ".join(f"{_sum_if_known(c)} as {c}" for c in _SUMS)},
       cast(sum(tokens) as bigint) as tokens, sum(flops) as flops,
       arg_max(tokens_reached, last_step) as tokens_reached,
       arg_max(flops_reached, last_step) as flops_reached,
       sum(flops) filter (where mfu is not null)
           / sum(peak_flops_stepping) filter (where mfu is not null) as mfu,
       struct_pack({", ".join(f"{f} := {_TOTAL_BASES[f]}" for f in FIGURES)}) as basis,
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
        "select label as attempt, status, gpus, hours, gpu_h, cost_usd, gpu_kwh, "
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
        "pue_kind": basis.of_source(s.pue.source),
        "intensity": s.carbon_intensity.value,
        "intensity_from": s.carbon_intensity.source,
        "intensity_kind": basis.of_source(s.carbon_intensity.source),
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
        for r in attempts:  # in the report's order: by start, then label
            groups.setdefault(r["basis"][figure], []).append(r["attempt"])
        # The strongest kind first (measured, declared, estimated, unknown), then by the first
        # attempt each applies to: the same notes in the same order on every build (#16).
        ordered = sorted(groups.items(), key=lambda g: _kind_rank(g[0]))  # stable: ties keep order
        key = tuple(
            ("all attempts" if len(groups) == 1 and len(attempts) > 1 else _labels(labels), text)
            for text, labels in ordered
        )
        if total is not None and total["basis"][figure].startswith("unknown"):
            key += (("total", total["basis"][figure]),)
        merged.setdefault(key, []).append(figure)
    return [
        f"{', '.join(figures)}: {who}: {text}"
        for key, figures in merged.items()
        for who, text in key
    ]


def _kind_rank(text: str) -> int:
    """Where the kind a basis text starts with stands in basis.KINDS; anything else last."""
    kind = text.split(":", 1)[0]
    return basis.KINDS.index(kind) if kind in basis.KINDS else len(basis.KINDS)


def _labels(labels: list[str], most: int = 6) -> str:
    if len(labels) <= most:
        return " ".join(labels)
    return " ".join(labels[:most]) + f" and {len(labels) - most} more"
