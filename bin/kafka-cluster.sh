#!/usr/bin/env bash
# kafka-cluster.sh for Vltava: the same arguments, run by `vltava cluster`.
exec "$(dirname "${BASH_SOURCE[0]}")/vltava-run" cluster "$@"
