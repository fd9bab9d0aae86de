#!/usr/bin/env bash
# kafka-delete-records.sh for Vltava: the same flags, run by `vltava delete-records`.
exec "$(dirname "${BASH_SOURCE[0]}")/vltava-run" delete-records "$@"
