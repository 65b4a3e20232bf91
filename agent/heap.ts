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
 * Later bursts of work (a re-list, a burst of changes, a verification read of the whole ruleset)
 * leave the same kind of garbage, and a young generation V8 grew for them (up to 32 MiB) and
 * shrinks only in a full collection made while the allocation rate is low. QuietCollector runs
 * such collections once the agent has been quiet for a while after work.
 *
 * Invariants: each collection stops the event loop for one full GC (~0.1 s at 100k endpoints);
 * `compactHeap` runs them one per macrotask, so events are served between them; the quiet
 * collections run only after QUIET_COLLECTION_MS without passes or kernel reads, so a change
 * waits for one only when it arrives in that pause. (Measured on Node 20: V8's incremental
 * collection, `gc({execution: 'async'})`, pauses less but never shrinks the young generation;
 * nor does a young-generation collection followed by a full one.)
 */
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Clock } from './scheduler.js';

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

/** How long the agent must be quiet after work before QuietCollector's first step. */
export const QUIET_COLLECTION_MS = 8_000;
/**
 * Quiet time between QuietCollector's two steps. V8 shrinks the young generation in a full
 * collection only when the allocation rate it measured since the collections of the last 5 s is
 * low; the first step ends the busy period's measurement, the second sees the quiet one.
 */
export const SHRINK_COLLECTION_GAP_MS = 6_000;

export interface QuietCollectorOptions {
  clock: Clock;
  /** Quiet time after the last work before the first step (default QUIET_COLLECTION_MS). */
  quietMs?: number;
  /** Further quiet time before the second step (default SHRINK_COLLECTION_GAP_MS). */
  gapMs?: number;
  /**
   * One step: 'release' frees and compacts what the work left (the agent: compactHeap), 'shrink'
   * is the full collection in which V8 shrinks the young generation (the agent: collectGarbage).
   */
  collect: (step: QuietStep) => unknown;
}

export type QuietStep = 'release' | 'shrink';

/**
 * Two steps each time the agent falls quiet: `worked()` after each pass or kernel read (re)arms a
 * timer; when it fires, with no work since, 'release' runs (full collections that free and
 * compact what the work left), and `gapMs` later, still with no work, 'shrink' (one more, in
 * which V8 shrinks the young generation). Work in between starts over. Steady work keeps them
 * from ever running (V8 then collects as it sees fit); at most two steps per quiet spell.
 */
export class QuietCollector {
  private readonly quietMs: number;
  private readonly gapMs: number;
  private cancel: (() => void) | undefined;
  private stopped = false;

  constructor(private readonly options: QuietCollectorOptions) {
    this.quietMs = options.quietMs ?? QUIET_COLLECTION_MS;
    this.gapMs = options.gapMs ?? SHRINK_COLLECTION_GAP_MS;
  }

  /** Work happened: collect once `quietMs` pass without more, and again `gapMs` after that. */
  worked(): void {
    if (this.stopped) return;
    this.arm(this.quietMs, () => {
      this.options.collect('release');
      this.arm(this.gapMs, () => this.options.collect('shrink'));
    });
  }

  /** No collection is due any more, whatever work is reported later (the agent stops). */
  stop(): void {
    this.stopped = true;
    this.cancel?.();
    this.cancel = undefined;
  }

  private arm(ms: number, fire: () => void): void {
    this.cancel?.();
    this.cancel = this.options.clock.setTimer(() => {
      this.cancel = undefined;
      fire();
    }, ms);
  }
}
