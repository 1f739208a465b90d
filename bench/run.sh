#!/bin/sh
# Run every benchmark and replay suite; JSON results go to the directory given (default bench-out).
# Usage: bench/run.sh [OUT_DIR] [DATA_DIR]   (DATA_DIR: a directory laid out like ../shared/data)
set -eu
out=${1:-bench-out}
data=${2:-../shared/data}
mkdir -p "$out"
fleetroute bench decision --json > "$out/decision.jsonl"
fleetroute bench proxy --json > "$out/proxy.json"
fleetroute bench fleet --json > "$out/fleet.json"
fleetroute bench tracing --json > "$out/tracing.json"
for suite in greenserv routellm-mmlu routellm-gsm8k; do
    fleetroute replay --data "$data" --suite "$suite" --policy linucb --train "$data" --seeds 5 \
        --json > "$out/replay-$suite.json"
done
fleetroute replay --data "$data" --suite greenserv --policy linucb --train "$data" --folds 5 \
    --seeds 5 --json > "$out/replay-greenserv-5fold.json"
echo "results in $out"
