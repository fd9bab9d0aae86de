#!/usr/bin/env bash
# kafka-producer-perf-test.sh for Vltava: the same arguments, run by `vltava perf producer`.
exec "$(dirname "${BASH_SOURCE[0]}")/vltava-run" perf producer "$@"
