/**
 * What the compiler derives from the Snapshot's profiles Map: the profiles carrying each tag, and
 * which profiles changed since the previous update (so a compile can redo only their part).
 *
 * Invariants:
 * - `update` skips the walk only when handed the same Map object with the same
 *   `generations.profiles` as the previous update (the Snapshot contract, types.ts); otherwise it
 *   compares every profile with the one seen last time, by object identity (profile objects are
 *   replaced, never mutated).
 * - `changes` lists exactly the ids whose ProfileInput object was added, replaced or deleted by
 *   the last update; `carriers` always reflects the current profiles (sorted ids, new arrays
 *   whenever they change), whatever order the Map was filled in.
 */
import type { Tags } from '../src/model/index.js';
import type { ProfileInput, Snapshot } from './types.js';

export interface ProfileChange {
  before: ProfileInput | undefined;
  after: ProfileInput | undefined;
}

const NO_TAGS: Tags = [];
const NO_CHANGES: ReadonlyMap<string, ProfileChange> = new Map();
/** Above this many changes the carriers are rebuilt rather than patched one by one. */
const REBUILD_THRESHOLD = 64;

export class ProfileIndex {
  private source: ReadonlyMap<string, ProfileInput> | undefined;
  private generation: number | undefined;
  /** Every profile as of the last update. */
  private readonly known = new Map<string, ProfileInput>();

  /** Tag → ids of the profiles carrying it, sorted. */
  readonly carriers = new Map<string, readonly string[]>();
  changes: ReadonlyMap<string, ProfileChange> = NO_CHANGES;

  /** Profile as of the last update. */
  get(id: string): ProfileInput | undefined {
    return this.known.get(id);
  }

  update(snapshot: Snapshot): void {
    const { profiles } = snapshot;
    const generation = snapshot.generations?.profiles;
    if (generation !== undefined && generation === this.generation && profiles === this.source) {
      this.changes = NO_CHANGES;
      return;
    }
    const changes = new Map<string, ProfileChange>();
    let added = 0;
    profiles.forEach((after, id) => {
      const before = this.known.get(id);
      if (before === after) return;
      if (before === undefined) added++;
      changes.set(id, { before, after });
    });
    if (this.known.size > profiles.size - added) {
      for (const [id, before] of this.known) if (!profiles.has(id)) changes.set(id, { before, after: undefined });
    }
    for (const [id, { after }] of changes) {
      if (after === undefined) this.known.delete(id);
      else this.known.set(id, after);
    }
    if (changes.size > REBUILD_THRESHOLD) this.rebuildCarriers();
    else for (const [id, change] of changes) this.patchCarriers(id, change);
    this.changes = changes;
    this.source = profiles;
    this.generation = generation;
  }

  private rebuildCarriers(): void {
    const lists = new Map<string, string[]>();
    for (const [id, profile] of this.known) {
      for (const tag of new Set(profile.tags ?? NO_TAGS)) {
        const list = lists.get(tag);
        if (list) list.push(id);
        else lists.set(tag, [id]);
      }
    }
    this.carriers.clear();
    for (const [tag, list] of lists) this.carriers.set(tag, list.sort());
  }

  private patchCarriers(id: string, { before, after }: ProfileChange): void {
    const oldTags = before?.tags ?? NO_TAGS;
    const newTags = after?.tags ?? NO_TAGS;
    if (oldTags === newTags) return;
    for (const tag of new Set(oldTags)) {
      if (newTags.includes(tag)) continue;
      const list = (this.carriers.get(tag) ?? []).filter((carrier) => carrier !== id);
      if (list.length === 0) this.carriers.delete(tag);
      else this.carriers.set(tag, list);
    }
    for (const tag of new Set(newTags)) {
      if (oldTags.includes(tag)) continue;
      this.carriers.set(tag, [...(this.carriers.get(tag) ?? []), id].sort());
    }
  }
}
