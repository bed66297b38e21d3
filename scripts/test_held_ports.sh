#!/bin/sh
# Runs `deno task test` in a network namespace of its own (root, Linux) where
# other programs hold 127.0.0.1:9229 and [::]:8080, as a developer's
# `deno --inspect` or another web server would: the suite must pass anyway.
# Usage: sudo sh scripts/test_held_ports.sh
set -eu
cd "$(dirname "$0")/.."
# shellcheck disable=SC2016 # expanded by the inner shell
exec unshare --net -- sh -c '
  ip link set lo up
  timeout 900 python3 -c "
import socket, time
a = socket.socket(); a.bind((\"127.0.0.1\", 9229)); a.listen()
b = socket.socket(socket.AF_INET6); b.bind((\"::\", 8080)); b.listen()
time.sleep(900)" &
  holder=$!
  sleep 0.5
  status=0
  deno task test || status=$?
  kill "$holder"
  exit "$status"
'
