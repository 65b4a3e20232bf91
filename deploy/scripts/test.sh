#!/usr/bin/env bash
# The README's test command: set up (idempotent), then run every test against real etcd,
# iptables, ipset and network namespaces.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/scripts/setup.sh
exec npx vitest run
