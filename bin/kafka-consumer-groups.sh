#!/usr/bin/env bash
# kafka-consumer-groups.sh for Vltava: the same flags, run by `vltava consumer-groups`.
exec "$(dirname "${BASH_SOURCE[0]}")/vltava-run" consumer-groups "$@"
