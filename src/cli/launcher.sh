#!/bin/sh
# calicoctl: the command on PATH. Replaces itself (exec: no extra process; arguments, exit code,
# stdin/stdout and signals pass through unchanged) with Node.js running the bundled CLI,
# dist/calicoctl.cjs.
#
# NODE_EXTRA_CA_CERTS is dropped unless an etcd endpoint may use https: Node.js 20 reads and
# parses that file when it starts, before any script runs (measured: ~40 ms for Debian's bundle of
# 144 certificates, a quarter of a `profile show`), and calicoctl's only connections are to etcd,
# plain HTTP unless ETCD_ENDPOINTS (or ETCD_SCHEME) says https. With https the variable is kept:
# it may be what makes etcd's certificate trusted.
case "${ETCD_ENDPOINTS-} ${ETCD_SCHEME-}" in
  *[Hh][Tt][Tt][Pp][Ss]*) ;;
  *) unset NODE_EXTRA_CA_CERTS ;;
esac
here=$(readlink -f "$0")
exec node "${here%/*}/../../dist/calicoctl.cjs" "$@"
