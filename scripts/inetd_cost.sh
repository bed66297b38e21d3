#!/usr/bin/env bash
# The per-connection cost of `greeter --inetd` under tcpserver, next to
# tcpserver running printf: N sequential connections (bounded: each client
# has 5 s), wall time per connection, connections per second, and the CPU
# the children used per connection (user+system, from /usr/bin/time on
# tcpserver, which reaps them). Loopback only.
#   scripts/inetd_cost.sh [N]        (default 50)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
N=${1:-50}
for tool in tcpserver socat /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "needs $tool"; exit 1; }
done
DENO=$(command -v deno)
port=$((30000 + RANDOM % 20000))
expected="Connection Established"

measure() {
  local label=$1
  shift
  local times
  times=$(mktemp)
  local pidfile server tries=0
  pidfile=$(mktemp)
  while :; do
    # time runs a shell that becomes tcpserver, whose pid it wrote down.
    # shellcheck disable=SC2016 # $$ and $@ are for the inner shell.
    /usr/bin/time -o "$times" -f "%U %S" bash -c 'echo $$ >"$0"; exec "$@"' \
      "$pidfile" tcpserver -c 4 127.0.0.1 "$port" "$@" 2>/dev/null &
    server=$!
    sleep 0.5
    kill -0 "$server" 2>/dev/null && break
    # The port was taken: another one, five times at most.
    tries=$((tries + 1))
    [ "$tries" -lt 5 ] || { echo "cannot start tcpserver"; exit 1; }
    port=$((30000 + RANDOM % 20000))
  done
  local ok=0 start end
  start=$(date +%s%N)
  for _ in $(seq 1 "$N"); do
    out=$(timeout 5 socat -u "TCP:127.0.0.1:$port" - 2>/dev/null | tr -d '\r')
    [ "$out" = "$expected" ] && ok=$((ok + 1))
  done
  end=$(date +%s%N)
  # tcpserver exits on SIGTERM; time then reports what it and its children
  # used.
  kill -TERM "$(cat "$pidfile")" 2>/dev/null
  wait "$server" 2>/dev/null
  rm -f "$pidfile"
  local wall_ms=$(((end - start) / N / 1000000))
  local cpu
  cpu=$(awk -v n="$N" '{ printf "%.1f", ($1 + $2) * 1000 / n }' "$times")
  printf '%-34s %3d/%d greeted  %4d ms/conn  %5.1f conn/s  %6s ms CPU/conn\n' \
    "$label" "$ok" "$N" "$wall_ms" "$(awk -v w="$wall_ms" 'BEGIN { printf "%.1f", 1000 / w }')" "$cpu"
  rm -f "$times"
  # A client that was not greeted makes the figures meaningless: said, and
  # the script fails.
  [ "$ok" -eq "$N" ] || failed=1
  port=$((port + 1))
}

failed=0
measure "printf" printf 'Connection Established\r\n'
# Under deno run, greeter holds the debugger's address (docs/security.md).
GREETER=("$DENO" run --allow-read --allow-env --allow-net=127.0.0.1:9229
  --unstable-net main.ts --inetd --quiet)
measure "greeter --inetd --linger 0" "${GREETER[@]}" --linger 0
measure "greeter --inetd" "${GREETER[@]}"
exit "$failed"
