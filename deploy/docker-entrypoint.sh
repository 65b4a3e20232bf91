#!/bin/sh
# Image entrypoint: `docker run IMAGE` runs the agent, `docker run IMAGE --once …` the agent with
# those flags, and `docker run IMAGE calicoctl …` (or any other command) that command.
set -e
case "${1:-}" in
  '' | -*) exec calico-agent "$@" ;;
  *) exec "$@" ;;
esac
