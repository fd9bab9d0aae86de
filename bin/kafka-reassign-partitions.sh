#!/usr/bin/env bash
# kafka-reassign-partitions.sh for Vltava: the same flags, run by `vltava reassign-partitions`.
exec "$(dirname "${BASH_SOURCE[0]}")/vltava-run" reassign-partitions "$@"
