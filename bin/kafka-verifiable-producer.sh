#!/usr/bin/env bash
# kafka-verifiable-producer.sh for Vltava: the same flags, run by `vltava verifiable-producer`.
exec "$(dirname "${BASH_SOURCE[0]}")/vltava-run" verifiable-producer "$@"
