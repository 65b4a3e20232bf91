#!/usr/bin/env bash
# Least-privilege etcd users for calico-agent, calicoctl and the Docker plugin (etcd v3 auth).
#
#   calico-agent          reads policy (/calico/v1/), writes only its status
#                         (/calico/felix/v1/, /calico/agent/v1/); cannot change policy.
#   calico-policy-writer  calicoctl and calico-docker-plugin: reads and writes policy, endpoints
#                         and IPAM (/calico/v1/); reads agent status (calicoctl status, --wait).
#
# Usage (etcdctl's own settings, e.g. ETCDCTL_ENDPOINTS, ETCDCTL_USER=root:<password> once auth
# is on; TLS via ETCDCTL_CACERT/ETCDCTL_CERT/ETCDCTL_KEY):
#   CALICO_AGENT_PASSWORD=… CALICO_WRITER_PASSWORD=… deploy/scripts/etcd-roles.sh [--enable-auth]
# --enable-auth also creates user root (ETCD_ROOT_PASSWORD) if missing and runs `auth enable`.
# Re-running is safe: roles, grants and users that exist are left as they are (passwords kept).
# Then give each command its user: ETCD_USERNAME=calico-agent ETCD_PASSWORD=… for the agent,
# ETCD_USERNAME=calico-policy-writer ETCD_PASSWORD=… for calicoctl and the plugin.
set -euo pipefail
export ETCDCTL_API=3
: "${CALICO_AGENT_PASSWORD:?set CALICO_AGENT_PASSWORD}"
: "${CALICO_WRITER_PASSWORD:?set CALICO_WRITER_PASSWORD}"
enable_auth=false
for arg in "$@"; do
  case "$arg" in
    --enable-auth) enable_auth=true ;;
    *) echo "usage: $0 [--enable-auth]" >&2; exit 2 ;;
  esac
done

has_role() { etcdctl role list | grep -qx "$1"; }
has_user() { etcdctl user list | grep -qx "$1"; }
role() { has_role "$1" || etcdctl role add "$1" >/dev/null; }
# grant ROLE PERMISSION PREFIX
grant() { etcdctl role grant-permission "$1" --prefix=true "$2" "$3" >/dev/null; }
# user NAME PASSWORD ROLE
user() {
  has_user "$1" || etcdctl user add "$1" --new-user-password="$2" >/dev/null
  etcdctl user grant-role "$1" "$3" >/dev/null
}

role calico-agent
grant calico-agent read /calico/v1/
grant calico-agent readwrite /calico/felix/v1/
grant calico-agent readwrite /calico/agent/v1/

role calico-policy-writer
grant calico-policy-writer readwrite /calico/v1/
grant calico-policy-writer read /calico/felix/v1/
grant calico-policy-writer read /calico/agent/v1/

user calico-agent "$CALICO_AGENT_PASSWORD" calico-agent
user calico-policy-writer "$CALICO_WRITER_PASSWORD" calico-policy-writer

if $enable_auth; then
  if ! has_user root; then
    : "${ETCD_ROOT_PASSWORD:?set ETCD_ROOT_PASSWORD to create user root}"
    etcdctl user add root --new-user-password="$ETCD_ROOT_PASSWORD" >/dev/null
    etcdctl user grant-role root root >/dev/null
  fi
  etcdctl auth enable >/dev/null
fi
if $enable_auth; then echo "etcd users calico-agent and calico-policy-writer are ready; auth is enabled"; else echo "etcd users calico-agent and calico-policy-writer are ready"; fi
