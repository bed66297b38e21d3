#!/usr/bin/env bash
# Syscalls per connection of each benchmarked server, counted with
# `perf stat -e 'syscalls:sys_enter_*'` (kernel tracepoints, low overhead)
# while the load generator makes N connections (default 20000, C=32).
# Needs perf and the helpers that `deno task bench` builds into .bench/.
#
#   scripts/bench/syscalls.sh [N]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-20000}
mkdir -p .bench
[ -x .bench/loadgen ] || cc -O2 -o .bench/loadgen scripts/bench/loadgen.c
[ -x .bench/floor ] || cc -O2 -o .bench/floor scripts/bench/floor.c
command -v perf >/dev/null || { echo "perf not found (apt-get install linux-perf)"; exit 1; }

count() { # NAME COMMAND... (PORT in COMMAND is replaced)
  local name=$1 port pid perf ok
  shift
  port=$(( 30000 + RANDOM % 20000 ))
  local cmd=("${@//PORT/$port}")
  .bench/loadgen exec --stdout ".bench/syscalls_$name.stdout" \
    --stderr ".bench/syscalls_$name.stderr" -- taskset -c 1 "${cmd[@]}" &
  pid=$!
  trap 'kill -9 $pid 2>/dev/null || true' RETURN
  for _ in $(seq 100); do
    sleep 0.05
    .bench/loadgen run --port "$port" --connections 1 --concurrency 1 \
      >/dev/null 2>&1 && break
  done
  taskset -c 0 .bench/loadgen run --port "$port" --connections 2000 \
    --concurrency 32 >/dev/null
  perf stat -x, -e 'syscalls:sys_enter_*' -p "$pid" \
    -o ".bench/syscalls_$name.perf" &
  perf=$!
  sleep 0.3
  ok=$(taskset -c 0 .bench/loadgen run --port "$port" --connections "$N" \
    --concurrency 32 | grep -o '"ok":[0-9]*' | cut -d: -f2)
  sleep 0.2
  kill -INT "$perf"
  wait "$perf" || true
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  awk -F, -v n="$ok" -v name="$name" '
    $1 + 0 > 0 { sub("syscalls:sys_enter_", "", $3); c[$3] = $1; t += $1 }
    END {
      printf "%-18s %5.2f syscalls/conn:", name, t / n
      for (k in c) if (c[k] / n >= 0.01) printf " %s=%.2f", k, c[k] / n
      printf "\n"
    }' ".bench/syscalls_$name.perf"
}

count floor .bench/floor PORT
count deno-loop deno run --allow-net scripts/bench/deno_loop.ts PORT
count greeter-quiet deno run --allow-net main.ts -H 127.0.0.1 -p PORT --quiet
count greeter deno run --allow-net main.ts -H 127.0.0.1 -p PORT
if command -v node >/dev/null; then
  count node node scripts/bench/node_server.mjs PORT
fi
