"""Energy of an attempt: its GPUs measured where the samples allow, else estimated from rated power;
its host's CPU and memory estimated as codecarbon 3 does. These are SQL pieces for the report
(logbook.cost.report), so that the samples are aggregated in DuckDB, in one pass.

GPU, per GPU and attempt, the first that applies:

1. measured, energy counter: the rise of `energy_j` (NVML's total energy since the driver loaded)
   from the first reading to the last. The counter only rises while the driver stays loaded.
2. measured, power samples: the mean `power_w` reading × the time the readings span. For the
   sampler's evenly spaced readings that is the trapezoid rule with the first and last readings
   counted like the others, within one reading interval's energy of it (10 s × 700 W = 2 Wh on an
   H100, against 700 Wh an hour); a gap in the readings is filled at the mean power. (The exact
   rule needs each reading's neighbour, a sort of every row, 20 times slower here; even the end
   readings alone cost 12 % more time over 100 million samples, against an aim of 1.5 × a bare
   GROUP BY.)
3. estimated: the GPU count × the rated power (TDP) of the model in the price table × the wall
   time, the way BLOOM and the Llama model cards report energy.

Measured energy covers the readings, from the first to the last; the basis says so when that is
under 95 % of the wall time. GPU count unknown: GPU energy unknown (#16); no GPU at launch: none.

CPU: no power readings, and no table of CPU TDPs here, so codecarbon's method for a CPU model it
has no TDP for: its constant mode, 50 % of an assumed 85 W, over the wall time. (With a known TDP
codecarbon uses TDP × (0.1 + 0.9 × load³); without one, the load would only refine a guess.)

Memory: codecarbon 3's estimate from the host's memory size at launch (the `host` snapshot): a
guessed number of DIMMs (2 up to 16 GiB, 4 up to 64, 8 up to 128, then the fewest of the largest
common sizes, at most 32) at 5 W each (1.5 W on ARM), the 5th to 8th counted at 90 %, the 9th to
16th at 80 %, the rest at 70 %; at least 10 W (3 W on ARM), which is also the figure when the
size is not on record (`logbook run --no-capture`).

CPU and memory are estimated only for a host whose own facts are on record (a `host` row in the
attempt's launch snapshot): an imported attempt, or one run with --no-capture, gets no guess (#16);
its CPU and memory energy are unknown, and so is its total energy.

So the samples are read once, and only the GPU rows' power, energy counter and time.
"""

from __future__ import annotations

CPU_TDP_W = 85.0  # codecarbon's POWER_CONSTANT for a CPU model it has no TDP for
CPU_CONSTANT_SHARE = 0.5  # codecarbon's CONSUMPTION_PERCENTAGE_CONSTANT (constant mode)
CPU_W = CPU_TDP_W * CPU_CONSTANT_SHARE
RAM_SLOT_W = 5.0  # codecarbon 3's RAM_SLOT_POWER_X86
RAM_SLOT_W_ARM = 1.5
MEASURED_SHARE_NOTED = 0.95  # under this share of the wall time, the basis says how much

# One row per attempt, host and GPU, in one pass over the run's samples; the group of the host and
# process rows (gpu_index null) is left out after the pass. Then one row per attempt and host (the
# CTE `ah` gives each attempt's host key, see logbook.cost.report).
SAMPLES_CTE_TEMPLATE = """
s as (
    select attempt_id, host, gpu_index,
           count(power_w) as n_power, avg(power_w) as mean_power,
           epoch(max(time) - min(time)) as span_s,
           count(energy_j) as n_energy, max(energy_j) - min(energy_j) as counter_j
    from samples where run = $run
    group by attempt_id, host, gpu_index
),
gpu_energy as (
    select attempt_id, {host_key} as hk, count(*) as gpus_sampled,
           sum(case when n_energy >= 2 then counter_j
                    when n_power >= 2 then mean_power * span_s end) as gpu_j,
           count(*) filter (where n_energy >= 2) as by_counter,
           count(*) filter (where n_energy < 2 and n_power >= 2) as by_power,
           max(span_s) as gpu_span_s
    from s join ah using (attempt_id) where gpu_index is not null group by all
)
"""


def samples_cte(host_key: str) -> str:
    """SQL: the CTEs `s` and `gpu_energy`, grouping GPUs by `host_key` (over `host` and `ah`)."""
    return SAMPLES_CTE_TEMPLATE.replace("{host_key}", host_key)


# Over a host's row of an attempt (gpu_j, gpus, tdp_w, wall_s, by_counter, by_power, gpu_span_s, spec_name,
# gpu_name, mem_bytes, is_arm, host_known):
GPU_KWH = """case when gpu_j is not null then gpu_j / 3.6e6
                  when gpus is null then null
                  when gpus = 0 then 0.0
                  when tdp_w is not null then gpus * tdp_w * wall_s / 3.6e6 end"""
_SHARE = "gpu_span_s / nullif(wall_s, 0)"
GPU_BASIS = f"""case
    when gpu_j is not null then 'measured: '
        || case when by_power = 0 then printf('NVML energy counter, %d GPUs', by_counter)
                when by_counter = 0 then printf('power samples × time, %d GPUs', by_power)
                else printf('%d GPUs, energy counter on %d and power samples × time on %d',
                            by_counter + by_power, by_counter, by_power)
           end
        || case when {_SHARE} < {MEASURED_SHARE_NOTED}
                then printf(', readings over %.0f%% of the wall time', 100 * {_SHARE}) else '' end
    when gpus is null then 'unknown: GPU count unknown'
    when gpus = 0 then 'measured: no GPU at launch'
    when tdp_w is not null
        then printf('estimated: %d GPUs × %g W rated (%s) × wall time; no power samples',
                    gpus, tdp_w, spec_name)
    else printf('unknown: no power samples, and no rated power for %s in the price table',
                coalesce('"' || gpu_name || '"', 'a GPU of unrecorded model'))
    end"""

NO_HOST = (
    "no host snapshot for this attempt (imported, or run with --no-capture), "
    "and logbook estimates CPU and memory only for a host on record"
)
CPU_KWH = f"case when host_known then {CPU_W} * wall_s / 3.6e6 end"
CPU_BASIS = f"""case when host_known
    then 'estimated: as codecarbon does for a CPU without a known TDP: {CPU_CONSTANT_SHARE:.0%} of {CPU_TDP_W:g} W × wall time'
    else 'unknown: {NO_HOST}' end"""

_GIB = "(mem_bytes / 1073741824.0)"
_SLOT = f"(case when is_arm then {RAM_SLOT_W_ARM} else {RAM_SLOT_W} end)"
_FLOOR = f"(case when is_arm then 3.0 else {2 * RAM_SLOT_W} end)"
_DIMMS = f"""(case when {_GIB} <= 2 then 1 when {_GIB} <= 16 then 2 when {_GIB} <= 64 then 4
                   when {_GIB} <= 128 then 8 when {_GIB} < 256 then ceil({_GIB} / 16)
                   when {_GIB} < 512 then ceil({_GIB} / 32) when {_GIB} < 1024 then ceil({_GIB} / 64)
                   else least(ceil({_GIB} / 128), 32) end)"""
RAM_W = f"""case when mem_bytes is null then {_FLOOR} else greatest({_FLOOR},
    {_SLOT} * least({_DIMMS}, 4) + {_SLOT} * 0.9 * least(greatest({_DIMMS} - 4, 0), 4)
    + {_SLOT} * 0.8 * least(greatest({_DIMMS} - 8, 0), 8) + {_SLOT} * 0.7 * greatest({_DIMMS} - 16, 0))
    end"""
RAM_KWH = f"case when host_known then ({RAM_W}) * wall_s / 3.6e6 end"
RAM_BASIS = f"""case when not host_known then 'unknown: {NO_HOST}'
    when mem_bytes is null
    then 'estimated: as codecarbon does: memory size not on record, its minimum (2 DIMMs)'
    else printf('estimated: as codecarbon does: %d DIMMs guessed for %.0f GiB, %g W each, less from the 5th',
                cast({_DIMMS} as integer), {_GIB}, {_SLOT}) end"""
