"""Training compute of an attempt: FLOPs as 6·N·D and model FLOPs utilization. SQL pieces for
the report (logbook.cost.report).

N, the parameter count, and the tokens per optimizer step come from `--params` and
`--tokens-per-step`, else `[compute]` in logbook.toml, else the attempt's own snapshot rows of kind
api_config (logbook.config), config (the --config file, flattened) or arg (the command line), in
that order, under the first of these names (case-insensitive, '-' read as '_'):

- parameters: params, n_params, num_params, num_parameters, n_parameters, model.params,
  model.n_params, model.num_params, model.num_parameters;
- tokens per step: tokens_per_step, tokens_per_batch, train.tokens_per_step,
  train.tokens_per_batch, training.tokens_per_step, training.tokens_per_batch.

A value is a JSON number or a string such as "7B" or "4M" (k, M, B or G, T).

Steps an attempt ran: its last step minus the step it resumed from (the first attempt of a run
starts at 0; a later one with no resume point on record, just before its first step seen).
Tokens processed: steps run × tokens per step, steps done again after a crash included; tokens
reached: the last step × tokens per step. MFU: achieved FLOP/s (6·N × tokens per step ÷ seconds
per step, the attempt's pace while stepping) ÷ (the accelerator's dense peak × GPU count), when
the price table knows the peak.
"""

from __future__ import annotations

from logbook.cost.settings import SUFFIXES

PARAMS_NAMES = (
    "params",
    "n_params",
    "num_params",
    "num_parameters",
    "n_parameters",
    "model.params",
    "model.n_params",
    "model.num_params",
    "model.num_parameters",
)
TOKENS_NAMES = (
    "tokens_per_step",
    "tokens_per_batch",
    "train.tokens_per_step",
    "train.tokens_per_batch",
    "training.tokens_per_step",
    "training.tokens_per_batch",
)
KINDS = ("api_config", "config", "arg")
_NUMBER_RE = r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMbBgGtT])\s*$"


def number(expr: str) -> str:
    """SQL: a snapshot value (JSON text) as a number: 7e9, "7e9", "7B", "4M"; else null."""
    text = f"trim({expr}, '\" ')"
    scale = " ".join(f"when '{k}' then {v:g}" for k, v in SUFFIXES.items())
    return f"""coalesce(try_cast({text} as double),
        try_cast(regexp_extract({text}, '{_NUMBER_RE}', 1) as double)
        * case lower(regexp_extract({text}, '{_NUMBER_RE}', 2)) {scale} end)"""


def _declared(names: tuple[str, ...]) -> tuple[str, str]:
    """SQL: the rank of a snapshot row among the places a figure may be declared, and the test
    that it declares one."""
    listed = ", ".join(f"'{n}'" for n in names)
    kinds = ", ".join(f"'{k}'" for k in KINDS)
    key = "lower(replace(name, '-', '_'))"
    rank = (
        f"list_position([{', '.join(repr(k) for k in KINDS)}], kind) * 100 "
        f"+ list_position([{listed}], {key})"
    )
    where = f"kind in ({kinds}) and {key} in ({listed}) and {number('value')} > 0"
    return rank, where


def snapshot_columns() -> str:
    """SQL: aggregate columns over an attempt's snapshot rows: the declared N and tokens per
    step, and which row each came from."""
    cols = []
    for col, names in (("snap_params", PARAMS_NAMES), ("snap_tokens", TOKENS_NAMES)):
        rank, where = _declared(names)
        cols.append(f"arg_min({number('value')}, {rank}) filter (where {where}) as {col}")
        cols.append(f"arg_min(kind || ' ' || name, {rank}) filter (where {where}) as {col}_from")
    return ",\n".join(cols)


# Over the attempt row: n_params, tps (tokens per step), first_step, last_step, resumed_from_step,
# parent_id, s_per_step, peak_tflops, gpus.
STEPS_RUN = """greatest(last_step - coalesce(resumed_from_step,
                                         case when parent_id is null then 0 else first_step - 1 end),
                        0)"""
TOKENS = f"cast(round(({STEPS_RUN}) * tps) as bigint)"
FLOPS = f"6 * n_params * ({STEPS_RUN}) * tps"
TOKENS_REACHED = "cast(round(last_step * tps) as bigint)"
FLOPS_REACHED = "6 * n_params * last_step * tps"
# FLOPs the GPUs could have done while stepping: the denominator of MFU, summed for the total.
PEAK_FLOPS_WHILE_STEPPING = f"({STEPS_RUN}) * s_per_step * peak_tflops * 1e12 * gpus"
MFU = "6 * n_params * tps / s_per_step / (peak_tflops * 1e12 * gpus)"

_UNDECLARED = (
    "unknown: declare the parameter count and tokens per step (--params, --tokens-per-step, "
    "[compute] in logbook.toml, or config values named params and tokens_per_step)"
)


def basis(figure: str) -> str:
    """SQL: how `figure` (tokens, flops, tokens_reached or flops_reached) was found."""
    steps = "steps run" if figure in ("tokens", "flops") else "last step"
    # Tokens: steps × a declared batch; FLOPs: 6·N·D, an approximation of the model's (#16).
    tokens = f"printf('declared: {steps} × tokens per step, %g (%s)', tps, tps_from)"
    text = (
        tokens
        if figure.startswith("tokens")
        else (
            f"printf('estimated: 6 × N × tokens ({steps} × tokens per step); N = %g (%s), "
            "tokens per step = %g (%s)', n_params, n_params_from, tps, tps_from)"
        )
    )
    needs = "tps is null" if figure.startswith("tokens") else "n_params is null or tps is null"
    return f"""case when {needs} then '{_UNDECLARED}'
        when last_step is null then 'unknown: no training step seen in the output'
        else {text} end"""


MFU_BASIS = """case
    when n_params is null or tps is null or last_step is null then 'unknown: FLOPs unknown'
    when gpus is null then 'unknown: GPU count unknown'
    when gpus = 0 then 'unknown: no GPU'
    when peak_tflops is null then printf('unknown: no peak FLOPs for %s in the price table',
                                         coalesce('"' || gpu_name || '"', 'a GPU of unrecorded model'))
    when s_per_step is null then 'unknown: no step pace (fewer than two steps seen)'
    else printf('estimated: achieved FLOP/s (6 × N × tokens per step ÷ seconds per step) ÷ (%g TFLOPS dense peak (%s) × %d GPUs)',
                peak_tflops, spec_name, gpus) end"""
