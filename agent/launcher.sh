#!/bin/sh
# calico-agent: the command on PATH. Sets glibc's malloc tuning, then replaces itself with the
# agent (exec: no extra process; arguments, environment and signals pass through unchanged).
#
# Why: glibc serves buffers under its mmap threshold from its arenas, and a free in the middle of
# an arena is not given back to the kernel. The agent reads and writes restore texts of tens of
# MB through 64 KiB pipe chunks, so at 100k endpoints its arenas keep ~30 MiB it no longer uses.
# From 64 KiB up, buffers are mapped and unmapped on their own; a free top of more than 128 KiB
# is trimmed. The variables are read when the process starts, hence a launcher; a value already
# in the environment is kept.
#
# CALICO_AGENT_NODE_FLAGS: Node.js flags for the agent's process, split on spaces (for example
# `--cpu-prof --cpu-prof-dir=/tmp/prof`, which NODE_OPTIONS does not allow).
: "${MALLOC_MMAP_THRESHOLD_:=65536}"
: "${MALLOC_TRIM_THRESHOLD_:=131072}"
export MALLOC_MMAP_THRESHOLD_ MALLOC_TRIM_THRESHOLD_
here=$(dirname "$(readlink -f "$0")")
# shellcheck disable=SC2086 # the flags are meant to split
exec node ${CALICO_AGENT_NODE_FLAGS-} "$here/../dist/agent/main.js" "$@"
