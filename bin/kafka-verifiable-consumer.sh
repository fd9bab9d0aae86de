#!/usr/bin/env bash
# kafka-verifiable-consumer.sh for Vltava: the same flags, run by `vltava verifiable-consumer`.
exec "$(dirname "${BASH_SOURCE[0]}")/vltava-run" verifiable-consumer "$@"
