#!/usr/bin/env bash
# kafka-storage.sh for Vltava: random-uuid, format and info, run by `vltava storage`.
exec "$(dirname "${BASH_SOURCE[0]}")/vltava-run" storage "$@"
