#!/usr/bin/env bash
# Installs what calico-agent needs on a fresh Debian machine (run as root): the kernel tools and
# etcd from Debian, the npm dependencies, the build, and the package itself (`npm pack`, then
# `npm install -g` of the tarball: calicoctl, calico-agent and calico-docker-plugin on PATH).
# Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/../.."
need=()
# Node.js >= 20 runs the agent (package.json `engines`). Debian's own nodejs is installed when the
# machine has none and Debian's is new enough (Debian 13; Debian 12 ships 18: install Node.js 20
# from elsewhere first, e.g. deb.nodesource.com).
node_major() { node -e 'console.log(process.versions.node.split(".")[0])' 2>/dev/null || echo 0; }
if (($(node_major) < 20)); then
  candidate=$(apt-cache policy nodejs 2>/dev/null | awk '/Candidate:/ { split($2, v, "."); sub(/^[0-9]+:/, "", v[1]); print v[1] + 0 }')
  if ((${candidate:-0} < 20)); then
    echo "setup: calico-agent needs Node.js >= 20 (found $(node --version 2>/dev/null || echo none); Debian offers ${candidate:-none}); install Node.js 20 (e.g. from deb.nodesource.com) and re-run" >&2
    exit 1
  fi
  need+=(nodejs npm)
fi
for pkg in etcd-server etcd-client iptables ipset libjemalloc2 iproute2 iputils-ping netcat-openbsd procps util-linux docker.io busybox-static systemd debootstrap; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run build --silent
# The package as users install it; skipped when the installed one is this very build.
tarball_dir=$(mktemp -d)
trap 'rm -rf "$tarball_dir"' EXIT
npm pack --ignore-scripts --silent --pack-destination "$tarball_dir" >/dev/null
npm install -g --prefer-offline --no-audit --no-fund --loglevel=error "$tarball_dir"/calico-agent-*.tgz
