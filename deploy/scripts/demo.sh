#!/usr/bin/env bash
# The live demo (README): installs what is missing and builds (setup.sh), then builds a two-host
# lab out of network namespaces (etcd + hostA + hostB + one calico-agent each + four workloads),
# walks through the WEB/APP policy example printing every calicoctl command, proves with real
# packets which connections are allowed (✓) and denied (✗), and shows how long enforcement took.
# Everything it creates is torn down at the end, on error and on Ctrl-C. Run as root.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ $(id -u) -ne 0 ]]; then
  echo "demo.sh: run as root (it creates network namespaces, veths and iptables rules inside them)" >&2
  exit 1
fi
bash deploy/scripts/setup.sh
exec node dist/test/lab/demo.js
