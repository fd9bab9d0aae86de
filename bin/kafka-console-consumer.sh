#!/usr/bin/env bash
# kafka-console-consumer.sh for Vltava: the same flags, run by `vltava console-consumer`.
exec "$(dirname "${BASH_SOURCE[0]}")/vltava-run" console-consumer "$@"
