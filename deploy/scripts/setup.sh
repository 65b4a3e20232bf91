#!/usr/bin/env bash
# Installs what calico-agent needs on a fresh Debian machine (run as root): the kernel tools and
# etcd from Debian, the npm dependencies, the build, and the package itself (`npm pack`, then
# `npm install -g` of the tarball: calicoctl, calico-agent and calico-docker-plugin on PATH).
# Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/../.."
need=()
# Node.js >= 18 runs the agent; Debian's own nodejs/npm packages do when the machine has none.
if ! command -v node >/dev/null || ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 18 ? 0 : 1)'; then
  need+=(nodejs npm)
fi
for pkg in etcd-server etcd-client iptables ipset iproute2 iputils-ping netcat-openbsd procps util-linux docker.io busybox-static systemd; do
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
