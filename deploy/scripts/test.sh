#!/usr/bin/env bash
# The README's test command: set up (idempotent), then run every test against real etcd,
# iptables, ipset and network namespaces. Ends with a plain "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/scripts/setup.sh
results=$(mktemp)
trap 'rm -f "$results"' EXIT
status=0
npx vitest run --reporter=default --reporter=json --outputFile="$results" || status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  if (r.numTotalTests === 0) { console.log("no tests ran"); process.exit(1); }
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed` + (r.numPendingTests ? `, ${r.numPendingTests} skipped` : ""));
' "$results" || status=1
exit "$status"
