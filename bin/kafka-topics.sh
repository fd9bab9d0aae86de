#!/usr/bin/env bash
# kafka-topics.sh for Vltava: the same flags, run by `vltava topics`.
exec "$(dirname "${BASH_SOURCE[0]}")/vltava-run" topics "$@"
