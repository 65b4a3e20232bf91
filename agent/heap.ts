/**
 * Giving memory back after the initial sync. Decoding 100k values and rendering the full restore
 * texts leaves the old generation full of garbage interleaved with what stays live (the graph,
 * the writers' caches), and V8 keeps those pages committed: left alone, memory is only reclaimed
 * under allocation pressure, which on a quiet host can be never (RSS stays near the cold start's
 * peak). One full collection frees the garbage but leaves the pages fragmented; each further one
 * evacuates a share of the sparsest pages, so `compactHeap` repeats collections while the
 * committed heap still shrinks.
 *
 * V8's `gc()` is exposed at run time, as Jest's leak detector does it (`--expose-gc` set with
 * v8.setFlagsFromString, then `gc` taken from a fresh context). Where that is not possible the
 * calls do nothing: memory is then only reclaimed later, nothing else changes.
 *
 * Invariant: each collection blocks the event loop for one full GC (~0.1 s at 100k endpoints);
 * `compactHeap` runs them one per macrotask, so events are served between them.
 */
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | null | undefined;

/** Runs a full, blocking collection; false when unavailable. */
export function collectGarbage(): boolean {
  if (gc === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      const exposed: unknown = runInNewContext('gc');
      gc = typeof exposed === 'function' ? (exposed as () => void) : null;
    } catch {
      gc = null;
    }
  }
  gc?.();
  return gc !== null;
}

/** A collection that gives back less committed heap than this ends the compaction. */
const MIN_GAIN_BYTES = 4 * 1024 * 1024;
const MAX_ROUNDS = 12;

export interface Compaction {
  rounds: number;
  /** Committed V8 heap before the first and after the last collection. */
  committedBefore: number;
  committedAfter: number;
}

/**
 * Full collections, one per macrotask, until one gives back less than MIN_GAIN_BYTES of
 * committed heap (or MAX_ROUNDS); resolves with what they did (rounds 0: gc unavailable).
 */
export async function compactHeap(): Promise<Compaction> {
  const committedBefore = getHeapStatistics().total_heap_size;
  let committed = committedBefore;
  let rounds = 0;
  while (rounds < MAX_ROUNDS) {
    await new Promise((resolve) => setImmediate(resolve));
    if (!collectGarbage()) break;
    rounds += 1;
    const now = getHeapStatistics().total_heap_size;
    const gain = committed - now;
    committed = now;
    if (gain < MIN_GAIN_BYTES) break;
  }
  return { rounds, committedBefore, committedAfter: committed };
}
