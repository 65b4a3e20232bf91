#!/bin/sh
# calico-agent: the command on PATH. Chooses the agent's malloc (jemalloc when installed, else
# glibc with tuning), then replaces itself with the agent (exec: no extra process; arguments,
# environment and signals pass through unchanged).
#
# jemalloc (Debian: libjemalloc2) is preloaded when the host has it, unless the operator preloads
# something (LD_PRELOAD set) or opts out (CALICO_AGENT_JEMALLOC=off). Why: the initial sync
# leaves glibc's main arena full of freed chunks between live ones, ~25 MiB at 100k endpoints,
# that glibc returns only on an explicit malloc_trim; jemalloc returns freed pages on its own
# (decay). CALICO_AGENT_PRELOADED names the library so that the agent removes it from the
# environment its children inherit: a tool started with jemalloc takes ~5 ms longer (measured
# with ipset), and the tools allocate little.
#
# glibc's tuning, for when jemalloc is not used: glibc serves buffers under its mmap threshold
# from its arenas, and a free in the middle of an arena is not given back to the kernel. The agent
# reads and writes restore texts of tens of MB through 64 KiB pipe chunks, so at 100k endpoints
# its arenas keep ~30 MiB it no longer uses. From 64 KiB up, buffers are mapped and unmapped on
# their own; a free top of more than 128 KiB is trimmed. The variables are read when the process
# starts, hence a launcher; a value already in the environment is kept.
#
# CALICO_AGENT_NODE_FLAGS: Node.js flags for the agent's process, split on spaces (for example
# `--cpu-prof --cpu-prof-dir=/tmp/prof`, which NODE_OPTIONS does not allow).
: "${MALLOC_MMAP_THRESHOLD_:=65536}"
: "${MALLOC_TRIM_THRESHOLD_:=131072}"
export MALLOC_MMAP_THRESHOLD_ MALLOC_TRIM_THRESHOLD_
if [ -z "${LD_PRELOAD-}" ] && [ "${CALICO_AGENT_JEMALLOC-}" != off ]; then
  for lib in /usr/lib/*-linux-gnu/libjemalloc.so.2 /usr/lib/libjemalloc.so.2; do
    if [ -r "$lib" ]; then
      LD_PRELOAD=$lib
      CALICO_AGENT_PRELOADED=$lib
      export LD_PRELOAD CALICO_AGENT_PRELOADED
      break
    fi
  done
fi
here=$(dirname "$(readlink -f "$0")")
# shellcheck disable=SC2086 # the flags are meant to split
exec node ${CALICO_AGENT_NODE_FLAGS-} "$here/../dist/agent/main.js" "$@"
