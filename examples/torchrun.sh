#!/usr/bin/env bash
# torchrun under logbook, both ways:
#
#   per-host    one `logbook run` around torchrun on each host (the usual way): logbook reads
#               torchrun's output, where the first failing rank's error names the crash, and
#               relaunches torchrun as a whole (--restarts).
#   per-worker  torchrun starts `logbook run` as each worker (--no-python): the workers of one
#               torchrun launch record one attempt between them, keyed by torchrun's run id;
#               torchrun does the restarts (--max-restarts), so logbook's --restarts stays 0.
#
#   bash examples/torchrun.sh                     # one host, per-host
#   bash examples/torchrun.sh per-worker          # one host, per-worker
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=node-a LAUNCH_ID=gpt-0412 bash examples/torchrun.sh   # on node-a
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=node-a LAUNCH_ID=gpt-0412 bash examples/torchrun.sh   # on node-b
#
# Settings, from the environment: RUN (gpt); NPROC_PER_NODE (1 here; 8 on an 8-GPU host);
# NNODES (1), and for several hosts NODE_RANK, MASTER_ADDR, MASTER_PORT (29500) and LAUNCH_ID, a
# key unique to this launch and the same on every host (a job id, a date and time); TRAIN, the
# training script and its arguments (examples/train.py by default). The store is ./.logbook, or
# LOGBOOK_STORE: on several hosts, a folder they all see.
set -euo pipefail

mode="${1:-per-host}"
here="$(cd "$(dirname "$0")" && pwd)"
run="${RUN:-gpt}"
nproc="${NPROC_PER_NODE:-1}"
nnodes="${NNODES:-1}"
node_rank="${NODE_RANK:-0}"
master_addr="${MASTER_ADDR:-localhost}"
master_port="${MASTER_PORT:-29500}"
read -r -a train <<< "${TRAIN:-$here/train.py --steps 300 --ckpt-dir ckpt-torchrun}"

if [ "$nnodes" -gt 1 ] && [ -z "${LAUNCH_ID:-}" ]; then
    echo "several hosts need LAUNCH_ID: the same key on every host, new for each launch" >&2
    exit 2
fi

case "$mode" in
per-host)
    if [ "$nnodes" -gt 1 ]; then
        # Not under srun, so the wrappers need the launch key and their rank from us (under srun
        # they take SLURM's: see examples/slurm/train.sbatch).
        export LOGBOOK_LAUNCH_ID="$LAUNCH_ID" LOGBOOK_NODE_RANK="$node_rank" LOGBOOK_NODES="$nnodes"
        rendezvous=(--nnodes "$nnodes" --node-rank "$node_rank"
                    --master-addr "$master_addr" --master-port "$master_port")
    else
        rendezvous=(--standalone)
    fi
    exec logbook run --run "$run" --restarts 3 --backoff 10s --hang-timeout 30m \
        --checkpoint-dir ckpt-torchrun -- \
        torchrun "${rendezvous[@]}" --nproc-per-node "$nproc" "${train[@]}"
    ;;
per-worker)
    # The key is torchrun's TORCHELASTIC_RUN_ID (with its restart count), the rank RANK: give
    # torchrun a run id (--rdzv-id, or --standalone's fresh one), and no LOGBOOK_LAUNCH_ID, which
    # would take precedence and rank the workers by host.
    unset LOGBOOK_LAUNCH_ID LOGBOOK_NODE_RANK LOGBOOK_NODES
    if [ "$nnodes" -gt 1 ]; then
        rendezvous=(--nnodes "$nnodes" --rdzv-backend c10d
                    --rdzv-endpoint "$master_addr:$master_port" --rdzv-id "$LAUNCH_ID")
    else
        rendezvous=(--standalone)
    fi
    # The `--` ends torchrun's options: without it torchrun takes logbook's --run for its --run-path.
    exec torchrun "${rendezvous[@]}" --nproc-per-node "$nproc" --max-restarts 3 --no-python -- \
        logbook run --run "$run" -- python "${train[@]}"
    ;;
*)
    echo "usage: bash examples/torchrun.sh [per-host|per-worker]" >&2
    exit 2
    ;;
esac
