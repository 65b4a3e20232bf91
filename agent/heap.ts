/**
 * One full garbage collection, for the moment the agent knows most of its heap has just become
 * garbage: the initial sync (every listed value decoded, the full restore texts rendered and
 * sent). Left alone, V8 keeps that memory until allocation pressure triggers a major GC, which
 * on a quiet host can be never: RSS stays near the cold start's peak (about 90 MB more at
 * 100k endpoints).
 *
 * V8's `gc()` is exposed at run time, as Jest's leak detector does it (`--expose-gc` set with
 * v8.setFlagsFromString, then `gc` taken from a fresh context). Where that is not possible the
 * call does nothing: memory is then only reclaimed later, nothing else changes.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | null | undefined;

/** Runs a full, blocking collection (~0.1 s at 100k endpoints); false when unavailable. */
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
