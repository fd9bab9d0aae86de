#!/usr/bin/env bash
# kafka-configs.sh for Vltava: the same flags, run by `vltava configs`.
exec "$(dirname "${BASH_SOURCE[0]}")/vltava-run" configs "$@"
