/**
 * Which spec maps were derived from which, so planning a spec against a kernel state that was
 * produced from an earlier spec compares only what changed in between.
 *
 * Two records, both keyed by map identity (WeakMaps, so nothing is kept alive):
 * - lineage: the compiler built map `next` as a copy of map `base` with the values of `changed`
 *   keys replaced (never added, removed or reordered);
 * - origin: `kernelStateOf` built a kernel state map from the spec map `origin` (same keys).
 *
 * Invariant this relies on: the maps recorded here are never mutated after being recorded
 * (spec and kernel-state maps are handed out as ReadonlyMap and replaced, never edited). Then
 * for a state whose origin is `base`, every key outside `changed` holds what `next` holds.
 */

/** `next` equals `base` except at `changed`, listed in `next`'s iteration order. */
export interface Lineage {
  base: ReadonlyMap<string, unknown>;
  changed: readonly string[];
}

const lineages = new WeakMap<ReadonlyMap<string, unknown>, Lineage>();
const origins = new WeakMap<ReadonlyMap<string, unknown>, ReadonlyMap<string, unknown>>();

export function lineageOf(map: ReadonlyMap<string, unknown>): Lineage | undefined {
  return lineages.get(map);
}

export function recordOrigin(state: ReadonlyMap<string, unknown>, origin: ReadonlyMap<string, unknown>): void {
  origins.set(state, origin);
}

export function originOf(state: ReadonlyMap<string, unknown>): ReadonlyMap<string, unknown> | undefined {
  return origins.get(state);
}

/**
 * `base` with the values of existing keys replaced by `updates` (which must be listed in
 * `base`'s iteration order); `base` itself when there are none. The copy's lineage is recorded.
 */
export function patchMap<T>(base: ReadonlyMap<string, T>, updates: readonly (readonly [string, T])[]): ReadonlyMap<string, T> {
  if (updates.length === 0) return base;
  const next = new Map(base);
  for (const [key, value] of updates) {
    if (!next.has(key)) throw new Error(`patchMap: ${key} is not in the base map`);
    next.set(key, value);
  }
  lineages.set(next, { base, changed: updates.map(([key]) => key) });
  return next;
}

/**
 * A map holding `entries` in order: `previous` itself when it holds exactly those (same keys in
 * the same order, identical values), a patched copy of it when only values differ, else new.
 */
export function orderedMap<T>(
  previous: ReadonlyMap<string, T> | undefined,
  entries: readonly (readonly [string, T])[],
): ReadonlyMap<string, T> {
  if (previous !== undefined && previous.size === entries.length) {
    const updates: (readonly [string, T])[] = [];
    let i = 0;
    let sameKeys = true;
    for (const [key, value] of previous) {
      const entry = entries[i++]!;
      if (entry[0] !== key) {
        sameKeys = false;
        break;
      }
      if (entry[1] !== value) updates.push(entry);
    }
    if (sameKeys) return patchMap(previous, updates);
  }
  return new Map(entries);
}
