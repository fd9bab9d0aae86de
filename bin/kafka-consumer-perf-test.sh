#!/usr/bin/env bash
# kafka-consumer-perf-test.sh for Vltava: the same arguments, run by `vltava perf consumer`.
exec "$(dirname "${BASH_SOURCE[0]}")/vltava-run" perf consumer "$@"
