#!/usr/bin/env bash
# kafka-get-offsets.sh for Vltava: the same flags, run by `vltava get-offsets`.
exec "$(dirname "${BASH_SOURCE[0]}")/vltava-run" get-offsets "$@"
