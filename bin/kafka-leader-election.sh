#!/usr/bin/env bash
# kafka-leader-election.sh for Vltava: the same flags, run by `vltava leader-election`.
exec "$(dirname "${BASH_SOURCE[0]}")/vltava-run" leader-election "$@"
