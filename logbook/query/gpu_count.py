"""How many GPUs each host of an attempt had, from its launch snapshot: the `launch_gpus` view,
which `logbook cost` and `logbook goodput` both count with.

A host is the one a snapshot names when the attempt was launched over several hosts (it has
`nodes` rows); otherwise every row belongs to the attempt's own host, whatever an imported or
hand-made row says. The count, the first that applies:

1. LOCAL_RANK is set (the wrapper runs one worker of torchrun, DeepSpeed or accelerate) on a host
   with GPUs: one GPU per wrapped worker (a launch over hosts can wrap each worker);
2. the inventory at launch (gpu `count`; 0 on a host without GPUs);
3. what an imported history declares (`declared` snapshot rows of its hardware rows);
4. the launcher's LOCAL_WORLD_SIZE, SLURM_GPUS_ON_NODE, or WORLD_SIZE ÷ GROUP_WORLD_SIZE (or
   SLURM_NNODES);
5. null: the snapshot does not say.

A host whose snapshot gives no count has the GPUs its telemetry sampled (measured); else its count
is unknown. `attempt_gpus` sums the hosts of each attempt that way, as `logbook cost` does, for
`logbook goodput` (null when a host's count is unknown: never summed as 0).

Each basis starts with its kind (#16): the inventory is measured; one GPU per wrapped worker or per
launcher slot is estimated. `host_known` says whether the host's own facts are on record (any `host`
row): `logbook cost` estimates CPU and memory energy only for such a host, never from this machine.
"""

from __future__ import annotations

# The host a row of an attempt counts for, over a row with `host` joined to the CTE `ah`.
HOST_KEY = "case when ah.multi then coalesce(host, ah.a_host) else ah.a_host end"

_COUNT = """case
    when workers > 0 and coalesce(inv_gpus, 1) > 0 then workers
    when inv_gpus is not null then inv_gpus
    when declared_gpus is not null then declared_gpus
    when local_world > 0 then local_world
    when slurm_gpus > 0 then slurm_gpus
    when world > 0 then world // greatest(coalesce(nodes, 1), 1)
    end"""
_BASIS = """case
    when workers = 1 and coalesce(inv_gpus, 1) > 0
        then 'estimated: launcher: LOCAL_RANK is set, the wrapper runs one worker: 1 GPU'
    when workers > 1 and coalesce(inv_gpus, 1) > 0
        then printf('estimated: launcher: %d wrapped workers (LOCAL_RANK), a GPU each', workers)
    when inv_gpus = 0 then 'measured: inventory at launch: no GPU'
    when inv_gpus is not null
        then printf('measured: inventory at launch: %d × %s', inv_gpus,
                    coalesce(gpu_name, 'GPU, model not recorded'))
    when declared_gpus is not null
        then printf('declared: %d × %s, by the imported history', declared_gpus,
                    coalesce(gpu_name, 'GPU, model not declared'))
    when local_world > 0 then 'estimated: launcher: LOCAL_WORLD_SIZE (one GPU per local worker)'
    when slurm_gpus > 0 then 'declared: launcher: SLURM_GPUS_ON_NODE'
    when world > 0 then printf('estimated: launcher: WORLD_SIZE %d ÷ %d nodes', world,
                               greatest(coalesce(nodes, 1), 1))
    end"""

_HOSTS = """ah as (
    select a.attempt_id, coalesce(a.host, '') as a_host, n.attempt_id is not null as multi
    from attempts a left join (select distinct attempt_id from nodes) n using (attempt_id)
)"""
# What _COUNT reads. Each aggregate reads its rows through a case, not a filter: DuckDB works out
# an aggregate's argument for every row before its filter, and the casts of a million snapshot
# rows (a GPU's facts each) were most of goodput's time (#19).
_COUNT_INPUTS = """
        max(case when kind = 'gpu' and name = 'count' then try_cast(value as integer) end)
            as inv_gpus,
        max(case when kind = 'declared' and name = 'gpus' then try_cast(value as integer) end)
            as declared_gpus,
        count(distinct case when kind = 'launcher' and name = 'LOCAL_RANK' then value end)
            as workers,
        max(case when kind = 'launcher' and name = 'LOCAL_WORLD_SIZE'
                 then try_cast(value as integer) end) as local_world,
        max(case when kind = 'launcher' and name = 'SLURM_GPUS_ON_NODE'
                 then try_cast(value as integer) end) as slurm_gpus,
        max(case when kind = 'launcher' and name = 'WORLD_SIZE'
                 then try_cast(value as integer) end) as world,
        max(case when kind = 'launcher'
                      and name in ('GROUP_WORLD_SIZE', 'SLURM_NNODES', 'SLURM_JOB_NUM_NODES')
                 then try_cast(value as integer) end) as nodes"""

VIEW = f"""
create view launch_gpus as
with {_HOSTS},
h as (
    select sn.run, sn.attempt_id, {HOST_KEY} as host, {_COUNT_INPUTS},
        coalesce(mode(case when kind = 'gpu' and name like '%.name' then value end),
                 any_value(case when kind = 'declared' and name = 'gpu_model' then value end))
            as gpu_name,
        max(case when kind = 'host' and name = 'memory_bytes' then try_cast(value as double) end)
            as mem_bytes,
        count(*) filter (where kind = 'host') > 0 as host_known,
        coalesce(bool_or(case when kind = 'host' and name = 'os'
                              then regexp_matches(value, 'aarch64|arm64', 'i') end), false)
            as is_arm
    from snapshots sn join ah using (attempt_id)
    where value is not null and status = 'ok'
    group by all
)
select *, {_COUNT} as gpus, {_BASIS} as gpus_basis from h
"""

# The GPU count alone (goodput's GPU-hours), from the rows it is made of: a host without them has
# no count in launch_gpus either, and the model and the host's facts are not worked out.
_COUNTED = f"""{_HOSTS},
h as (
    select sn.attempt_id, {HOST_KEY} as host, {_COUNT_INPUTS}
    from snapshots sn join ah using (attempt_id)
    where value is not null and status = 'ok'
      and (kind = 'launcher' or (kind = 'gpu' and name = 'count')
           or (kind = 'declared' and name = 'gpus'))
    group by all
)"""
COUNT_VIEW = f"""
create view _launch_gpu_count as
with {_HOSTS},
h as (  -- one scan: the count's rows, and the model's for the basis (a row a GPU, or declared)
    select sn.attempt_id, {HOST_KEY} as host, {_COUNT_INPUTS},
        coalesce(mode(case when kind = 'gpu' and name like '%.name' then value end),
                 any_value(case when kind = 'declared' and name = 'gpu_model' then value end))
            as gpu_name,
        -- a host with a model but none of the count's rows has no count here at all
        count(case when kind = 'launcher' or name in ('count', 'gpus') then 1 end) > 0
            as counted
    from snapshots sn join ah using (attempt_id)
    where value is not null and status = 'ok'
      and (kind = 'launcher' or (kind = 'gpu' and (name = 'count' or name like '%.name'))
           or (kind = 'declared' and name in ('gpus', 'gpu_model')))
    group by all
)
select attempt_id, host, {_COUNT} as gpus, {_BASIS} as gpus_basis from h where counted
"""

# How many hosts each attempt ran on (#16), the first that applies: the hosts of a launch over
# several (`nodes` rows; measured), what an imported history declares (`declared` snapshot rows of
# its hardware rows), one for an attempt recorded on a host; else unknown (null), never 1: an
# imported attempt without hardware says nothing of its hosts.
HOSTS_VIEW = """
create view attempt_hosts as
with n as (select attempt_id, count(distinct host) as hosts from nodes group by attempt_id),
d as (
    select attempt_id, max(try_cast(value as integer)) as hosts from snapshots
    where kind = 'declared' and name = 'hosts' and status = 'ok' group by attempt_id
)
select a.attempt_id,
       coalesce(n.hosts, d.hosts, case when a.host is not null then 1 end) as hosts,
       case when n.hosts is not null then 'measured: the hosts of the launch'
            when d.hosts is not null then 'declared: by the imported history'
            when a.host is not null then 'measured: the host on record'
            else 'unknown: no host on record' end as hosts_basis
from attempts a left join n using (attempt_id) left join d using (attempt_id)
"""

_KINDS = "['measured', 'declared', 'estimated', 'unknown']"
# The GPUs of each attempt, summed over its hosts (#16): the launch snapshot's count, else the GPUs
# the sampler read on that host (as logbook/cost/report.py counts them), else unknown.
ATTEMPT_GPUS_VIEW = f"""
create view attempt_gpus as
with ah as (
    select a.attempt_id, coalesce(a.host, '') as a_host, n.attempt_id is not null as multi
    from attempts a left join (select distinct attempt_id from nodes) n using (attempt_id)
),
sampled as (
    select attempt_id, {HOST_KEY} as hk, count(*) as gpus_sampled
    from (select distinct attempt_id, host, gpu_index from _sampled_gpus)
    join ah using (attempt_id) group by all
),
per_host as (
    select coalesce(l.attempt_id, s.attempt_id) as attempt_id,
           coalesce(l.gpus, s.gpus_sampled) as gpus,
           case when l.gpus is not null then l.gpus_basis
                when s.gpus_sampled is not null
                    then printf('measured: telemetry: %d GPUs sampled', s.gpus_sampled)
                else 'unknown: no GPU count on record' end as gpus_basis
    from _launch_gpu_count l full join sampled s on s.attempt_id = l.attempt_id and s.hk = l.host
)
select attempt_id,
       case when bool_and(gpus is not null) then sum(gpus) end as gpus,
       case when count(*) = 1 then any_value(gpus_basis)
            -- the weakest kind among the hosts' (logbook/cost/basis.py's order)
            else printf('%s: %d hosts', {_KINDS}[max(list_position({_KINDS},
                                                          split_part(gpus_basis, ':', 1)))],
                        count(*)) end
           as gpus_basis
from per_host group by attempt_id
"""


# The attempts whose launch leaves a GPU count unknown: only their samples are read for
# `attempt_gpus`. A distinct over every sample cost 4 s and 0.9 GB at OPT's size for each goodput
# even when no attempt needed it (DuckDB scans a semi-join's probe side even when the other side
# is empty), so the filter is a constant, written into `_sampled_gpus` once the store is loaded.
# The attempts with a host whose launch snapshot gives no count. From the counts alone: through
# `_launch_gpu_count` DuckDB also worked out every host's GPU model (a LIKE over a million GPU
# facts at OPT's size), 0.5 of the 0.7 s this took before every `goodput` and `incidents` (#19).
NEEDS_SAMPLES = f"""
with {_COUNTED}, c as (select attempt_id, {_COUNT} as gpus from h)
select attempt_id from attempts
where attempt_id not in (select attempt_id from c where gpus is not null)
   or attempt_id in (select attempt_id from c where gpus is null)
"""


def sampled_view(attempt_ids: list[str]) -> str:
    """`_sampled_gpus`: the GPU samples of these attempts (none: a constant false, not scanned)."""
    quoted = ", ".join("'" + a.replace("'", "''") + "'" for a in attempt_ids)
    where = f"attempt_id in ({quoted})" if attempt_ids else "false"
    return (
        "create or replace view _sampled_gpus as select attempt_id, host, gpu_index from samples "
        f"where gpu_index is not null and {where}"
    )
