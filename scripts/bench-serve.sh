#!/usr/bin/env bash
# The `serve` bench: installs wrk (Debian) when it is missing, then runs
# `cargo bench -p agenthost-benches --bench serve`. Not part of the test
# command: it takes about half a minute of full load on both cores.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null 2>&1; then
  echo "==> installing wrk (the HTTP load generator) from Debian"
  if [ "$(id -u)" = 0 ]; then apt-get install -y wrk; else sudo apt-get install -y wrk; fi
fi
echo "==> cargo bench -p agenthost-benches --bench serve"
exec cargo bench --locked -p agenthost-benches --bench serve "$@"
