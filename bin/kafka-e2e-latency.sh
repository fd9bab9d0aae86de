#!/usr/bin/env bash
# kafka-e2e-latency.sh (EndToEndLatency) for Vltava: the same arguments, run by `vltava perf end-to-end`.
exec "$(dirname "${BASH_SOURCE[0]}")/vltava-run" perf end-to-end "$@"
