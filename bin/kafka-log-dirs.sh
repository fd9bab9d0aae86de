#!/usr/bin/env bash
# kafka-log-dirs.sh for Vltava: the same flags, run by `vltava log-dirs`.
exec "$(dirname "${BASH_SOURCE[0]}")/vltava-run" log-dirs "$@"
