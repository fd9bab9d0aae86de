#!/usr/bin/env bash
# kafka-console-producer.sh for Vltava: the same flags, run by `vltava console-producer`.
exec "$(dirname "${BASH_SOURCE[0]}")/vltava-run" console-producer "$@"
