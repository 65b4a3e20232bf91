#!/usr/bin/env bash
# Builds the Dockerfile as shipped and tries the image the way an operator would (run as root on
# Debian with docker.io, etcd-server, iptables; deploy/scripts/setup.sh installs them):
#   1. a base image under the Dockerfile's own FROM name (node:<major>-bookworm-slim), made here
#      because no image registry is reachable: Debian bookworm (debootstrap --variant=minbase,
#      cached in $CALICO_IMAGE_CACHE) plus this machine's Node.js of the same major, and its CA
#      bundle (NODE_EXTRA_CA_CERTS) so npm inside the build trusts what this machine trusts;
#   2. `docker build` of the repository with a private dockerd (own data/exec root and socket,
#      no iptables, no bridge; the build uses the host network for npm and apt);
#   3. in the image: `calicoctl --version`, `calico-agent --version`, `calico-docker-plugin
#      --version`, the kernel tools on PATH;
#   4. in a throwaway network namespace with its own etcd and a second private dockerd: the
#      image's calicoctl writes a profile, `--once --dry-run` prints a plan, and the agent
#      container (NET_ADMIN and friends, host network = that namespace, the xtables lock
#      bind-mounted as the README says) programs the namespace and answers /readiness 200.
# Everything it starts or creates is removed on exit, success or not. Prints one line per step.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
cache=${CALICO_IMAGE_CACHE:-/var/cache/calico-agent-image-test}
work=$(mktemp -d /tmp/calico-image-test.XXXXXX)
netns=calimg-$$
pids=()
step() { printf 'test-image: %s\n' "$*"; }
fail() { printf 'test-image: FAILED: %s\n' "$*" >&2; exit 1; }

cleanup() {
  set +e
  for sock in "$work"/run/docker.sock "$work"/build/docker.sock; do
    [[ -S $sock ]] && docker -H "unix://$sock" ps -aq 2>/dev/null | xargs -r docker -H "unix://$sock" rm -f >/dev/null 2>&1
  done
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  done
  ip netns del "$netns" 2>/dev/null
  grep -o " $work[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# Waits until "$@" succeeds (at most $wait_s seconds).
until_ok() {
  local what=$1 wait_s=$2; shift 2
  for _ in $(seq $((wait_s * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "$what did not happen within ${wait_s}s"
}

# A private dockerd: start_dockerd NAME [nsenter-prefix...]
start_dockerd() {
  local name=$1; shift
  mkdir -p "$work/$name"
  "$@" dockerd --data-root="$work/$name/data" --exec-root="$work/$name/exec" --pidfile="$work/$name/docker.pid" \
    --host="unix://$work/$name/docker.sock" --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --bridge=none \
    >"$work/$name/dockerd.log" 2>&1 &
  pids+=($!)
  until_ok "dockerd $name" 30 docker -H "unix://$work/$name/docker.sock" version
}

# 1. The base image.
base=$(sed -n 's/^FROM \(node:[0-9]*-bookworm-slim\).*/\1/p' Dockerfile | head -1)
major=${base#node:}; major=${major%%-*}
[[ -n $base ]] || fail "the Dockerfile has no FROM node:<major>-bookworm-slim"
[[ $(node -e 'console.log(process.versions.node.split(".")[0])') == "$major" ]] || fail "this machine's Node.js is not $major.x, the Dockerfile's base"
mkdir -p "$cache"
if [[ ! -s $cache/bookworm-minbase.tar ]]; then
  step "debootstrap bookworm (minbase) into $cache"
  command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  debootstrap --variant=minbase bookworm "$work/rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; fail "debootstrap"; }
  tar -C "$work/rootfs" -cf "$cache/bookworm-minbase.tar.part" . && mv "$cache/bookworm-minbase.tar.part" "$cache/bookworm-minbase.tar"
  rm -rf "$work/rootfs"
fi
rootfs=$work/rootfs
mkdir -p "$rootfs"
tar -C "$rootfs" -xf "$cache/bookworm-minbase.tar"
node_bin=$(command -v node)
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
mkdir -p "$rootfs/usr/local/bin" "$rootfs/usr/local/lib/node_modules" "$rootfs/etc/ssl/certs"
cp "$(readlink -f "$node_bin")" "$rootfs/usr/local/bin/node"
cp -a "$npm_dir" "$rootfs/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"

start_dockerd build
build() { docker -H "unix://$work/build/docker.sock" "$@"; }
tar -C "$rootfs" -c . | build import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' - "$base" >/dev/null
rm -rf "$rootfs"
step "base image $base made (Debian bookworm minbase + Node.js $(node --version))"

# 2. The image, as shipped.
DOCKER_BUILDKIT=0 build build --network host -t calico-agent:test "$repo" >"$work/build.log" 2>&1 || { tail -30 "$work/build.log" >&2; fail "docker build"; }
step "docker build: $(grep -o 'Sending build context to Docker daemon *[0-9.]*[kMG]*B' "$work/build.log" | sed 's/ *Sending build context to Docker daemon */context /')"

# 3. Commands and tools in the image.
version=$(node -p 'require("./package.json").version')
for command in calicoctl calico-agent calico-docker-plugin; do
  out=$(build run --rm --network none calico-agent:test "$command" --version)
  [[ $out == "$command $version" ]] || fail "$command --version in the image printed: $out"
done
[[ $(build run --rm --network none calico-agent:test --version) == "calico-agent $version" ]] || fail "flags without a command do not reach the agent"
build run --rm --network none calico-agent:test sh -c 'for c in modprobe ipset iptables-nft-restore iptables-legacy-restore ip6tables-nft-restore ip; do command -v $c >/dev/null || { echo "missing $c"; exit 1; }; done' \
  || fail "kernel tools missing in the image"
build run --rm --network none calico-agent:test sh -c 'ls /usr/lib/*-linux-gnu/libjemalloc.so.2' >/dev/null \
  || fail "jemalloc (the agent's malloc, agent/launcher.sh) missing in the image"
step "calicoctl, calico-agent, calico-docker-plugin $version, the kernel tools and jemalloc are in the image"

# 4. The agent container in a namespace with its own etcd.
ip netns add "$netns"
ip -n "$netns" link set lo up
inns() { nsenter --net="/run/netns/$netns" -- "$@"; }
inns etcd --name img --data-dir "$work/etcd" --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 --initial-cluster img=http://127.0.0.1:2380 \
  --log-level error >"$work/etcd.log" 2>&1 &
pids+=($!)
until_ok "etcd in the namespace" 30 inns env ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:2379 endpoint health
start_dockerd run nsenter --net="/run/netns/$netns" --
runner() { docker -H "unix://$work/run/docker.sock" "$@"; }
build save calico-agent:test | runner load >/dev/null
env_args=(-e ETCD_ENDPOINTS=http://127.0.0.1:2379 -e CALICO_HOSTNAME=img-host)
# The README runs the agent --privileged; this machine's container runtime cannot grant every
# capability (CAP_SYS_RESOURCE is outside its bounding set: "unable to apply caps"), so the test
# grants the ones the agent uses here instead.
caps=(--cap-add NET_ADMIN --cap-add NET_RAW --cap-add SYS_MODULE)
runner run --rm --network host "${env_args[@]}" calico-agent:test calicoctl profile add WEB >/dev/null
runner run --rm --network host "${env_args[@]}" calico-agent:test calicoctl profile WEB rule add inbound allow tcp to ports 80 >/dev/null
inns env ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:2379 put /calico/v1/host/img-host/workload/docker/w1/endpoint/e1 \
  '{"state":"active","name":"cali1","profile_ids":["WEB"],"ipv4_nets":["192.0.2.1/32"],"ipv6_nets":[]}' >/dev/null
plan=$(runner run --rm --network host "${caps[@]}" "${env_args[@]}" calico-agent:test --once --dry-run 2>"$work/dry-run.log")
grep -q -- '-A cali-pri-WEB ' <<<"$plan" || fail "--once --dry-run printed no plan for WEB: $(head -c 400 <<<"$plan")"
step "the image's calicoctl wrote a profile; --once --dry-run planned its chains"
touch "$work/xtables.lock"
runner run -d --name calico-agent --network host "${caps[@]}" \
  --mount "type=bind,source=$work/xtables.lock,target=/run/xtables.lock" -v /lib/modules:/lib/modules:ro \
  "${env_args[@]}" calico-agent:test >/dev/null
readiness() { inns node -e 'fetch("http://127.0.0.1:9099/readiness").then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))'; }
until_ok "the agent container ready" 60 readiness
inns iptables-nft-save -t filter | grep -q '^-A cali-pri-WEB ' || { runner logs calico-agent 2>&1 | tail -20 >&2; fail "the agent container did not program the namespace"; }
step "the agent container (host network, NET_ADMIN) programmed the namespace and is ready"
step "passed"
