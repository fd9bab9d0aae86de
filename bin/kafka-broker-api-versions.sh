#!/usr/bin/env bash
# kafka-broker-api-versions.sh for Vltava: the same flags, run by `vltava broker-api-versions`.
exec "$(dirname "${BASH_SOURCE[0]}")/vltava-run" broker-api-versions "$@"
