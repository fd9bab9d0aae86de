#!/usr/bin/env bash
# kafka-dump-log.sh for Vltava: the same flags, run by `vltava dump-log`.
exec "$(dirname "${BASH_SOURCE[0]}")/vltava-run" dump-log "$@"
