#!/usr/bin/env bash
# kafka-metadata-quorum.sh for Vltava: the same arguments, run by `vltava metadata-quorum`.
exec "$(dirname "${BASH_SOURCE[0]}")/vltava-run" metadata-quorum "$@"
