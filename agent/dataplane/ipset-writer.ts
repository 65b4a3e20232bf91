/**
 * The ipsets of one IP family, after Felix's `ipsets.IPSets`: it holds what it believes the kernel
 * has in our sets (metadata and members) and what is dirty, whole sets or single members, and
 * turns that into `ipset restore` text. Desired sets come from the calculation graph's live view.
 *
 *   markDirty(changes) ──▶ planUpdates() → write → commitUpdates()      creates, swaps, member deltas
 *                          planDeletions() → write → commitDeletions()  destroys (after the rules)
 *   read from the kernel ──▶ adopt(sets): every set dirty (a full comparison)
 *   background read ──▶ verify(sets): what differs from our cache is drift: adopted and dirty
 *
 * Invariants:
 * - A member change costs one `add`/`del` line; a set is rebuilt (scratch set + swap) only when
 *   its metadata change; destroys are kept apart from updates, so a set is never destroyed while
 *   a rule may still reference it.
 * - Only sets of this family with our prefix are ever touched.
 * - `ipset restore` is not atomic: after a failed write the caller calls `forget()`; the dirty
 *   marks are kept until a write succeeds.
 */
import {
  ipsetPrefix,
  memberDeltaText,
  planIpsetUpdate,
  sameIpsetMetadata,
  tempIpsetName,
  type DesiredFamily,
  type FamilyChanges,
  type IpFamily,
  type KernelIpsetState,
} from '../../compiler/index.js';

interface CachedSet {
  name: string;
  family: 'inet' | 'inet6';
  type: string;
  maxelem: number;
  members: Set<string>;
}

export class IpsetWriter {
  /** Our sets as the kernel holds them; undefined until read (or after a failure). */
  private kernel: Map<string, CachedSet> | undefined;
  /** Sets to compare whole (created, destroyed, new metadata, adopted). */
  private readonly dirtySets = new Set<string>();
  /** Per set, members whose presence may differ. */
  private readonly dirtyMembers = new Map<string, Set<string>>();
  private readonly prefix: string;
  private pendingDeletions: string[] = [];
  /** What the last `planUpdates` wrote: sets whole, and member deltas of cached sets. */
  private pending: { whole: CachedSet[]; added: [CachedSet, string][]; deleted: [CachedSet, string][] } = { whole: [], added: [], deleted: [] };
  /** Sets we no longer want whose destroy the kernel refused (in use by a rule we do not own). */
  private readonly refused = new Set<string>();

  constructor(
    readonly family: IpFamily,
    private readonly desired: DesiredFamily,
  ) {
    this.prefix = ipsetPrefix(family);
  }

  get known(): boolean {
    return this.kernel !== undefined;
  }

  markDirty(changes: Pick<FamilyChanges, 'ipsets' | 'members'>): void {
    for (const name of changes.ipsets) this.dirtySets.add(name);
    for (const [name, members] of changes.members) {
      if (this.dirtySets.has(name)) continue;
      let dirty = this.dirtyMembers.get(name);
      if (dirty === undefined) this.dirtyMembers.set(name, (dirty = new Set()));
      for (const member of members) dirty.add(member);
    }
  }

  adopt(sets: ReadonlyMap<string, KernelIpsetState>): void {
    this.kernel = new Map();
    for (const [name, set] of sets) {
      if (!name.startsWith(this.prefix)) continue;
      this.kernel.set(name, { ...set, members: new Set(set.members) });
      this.dirtySets.add(name);
    }
    for (const name of this.desired.ipsetNames()) this.dirtySets.add(name);
    this.dirtyMembers.clear();
  }

  forget(): void {
    this.kernel = undefined;
  }

  /**
   * `ipset restore` text for the dirty sets (whole) and members. What it plans is what
   * `commitUpdates` records, even if the graph moves while the text is written (its next
   * changes then name what moved).
   */
  planUpdates(): string {
    const kernel = this.requireKernel();
    let text = '';
    this.pending = { whole: [], added: [], deleted: [] };
    for (const name of [...this.dirtySets].sort()) {
      const desired = this.desired.ipset(name);
      if (desired === undefined) continue;
      const members = new Set(desired.members());
      const planned: CachedSet = { name, family: desired.family, type: desired.type, maxelem: desired.maxelem, members };
      text += planIpsetUpdate({ ...planned, has: (member) => members.has(member), members: () => members }, kernel.get(name), kernel.has(tempIpsetName(name)));
      this.pending.whole.push(planned);
    }
    for (const [name, members] of this.dirtyMembers) {
      if (this.dirtySets.has(name)) continue;
      const desired = this.desired.ipset(name);
      const current = kernel.get(name);
      if (desired === undefined || current === undefined) continue;
      let dels = '';
      let adds = '';
      for (const member of members) {
        const want = desired.has(member);
        if (want && !current.members.has(member)) {
          adds += `add ${name} ${member}\n`;
          this.pending.added.push([current, member]);
        } else if (!want && current.members.has(member)) {
          dels += `del ${name} ${member}\n`;
          this.pending.deleted.push([current, member]);
        }
      }
      text += memberDeltaText(name, current, dels + adds);
    }
    return text;
  }

  commitUpdates(): void {
    const kernel = this.requireKernel();
    for (const planned of this.pending.whole) {
      const current = kernel.get(planned.name);
      if (current !== undefined && !sameIpsetMetadata(planned, current)) kernel.delete(tempIpsetName(planned.name));
      kernel.set(planned.name, planned);
    }
    for (const [set, member] of this.pending.added) set.members.add(member);
    for (const [set, member] of this.pending.deleted) set.members.delete(member);
    this.pending = { whole: [], added: [], deleted: [] };
    this.dirtyMembers.clear();
  }

  /** `destroy` lines for the dirty sets we own that are no longer wanted. */
  planDeletions(): string {
    const kernel = this.requireKernel();
    this.pendingDeletions = [...this.dirtySets].filter((name) => kernel.has(name) && this.desired.ipset(name) === undefined).sort();
    return this.pendingDeletions.map((name) => `destroy ${name}\n`).join('');
  }

  /** The sets the last `planDeletions` destroys. */
  get plannedDeletions(): readonly string[] {
    return this.pendingDeletions;
  }

  /** `destroy` of one of the planned sets alone. */
  planDeletionOf(name: string): string {
    return `destroy ${name}\n`;
  }

  /**
   * The destroys were written, except `refused` (the set is in use by a rule we do not own):
   * those stay, in the kernel and the cache, until `retryRefused` marks them for another attempt.
   */
  commitDeletions(refused: ReadonlySet<string> = new Set()): void {
    const kernel = this.requireKernel();
    for (const name of this.pendingDeletions) {
      if (refused.has(name)) this.refused.add(name);
      else kernel.delete(name);
    }
    this.pendingDeletions = [];
    this.dirtySets.clear();
  }

  /** Marks the sets whose destroy was refused for another attempt; false when there are none. */
  retryRefused(): boolean {
    if (this.refused.size === 0) return false;
    for (const name of this.refused) this.dirtySets.add(name);
    this.refused.clear();
    return true;
  }

  /** Compares sets read back (while none of our ipset writes ran) with the cache; returns the drifted names. */
  verify(observed: ReadonlyMap<string, KernelIpsetState>): string[] {
    const kernel = this.requireKernel();
    const drifted: string[] = [];
    const owned = [...observed].filter(([name]) => name.startsWith(this.prefix));
    for (const [name, set] of owned) {
      const cached = kernel.get(name);
      if (cached === undefined || !sameIpsetMetadata(cached, set) || !sameMembers(cached.members, set.members)) drifted.push(name);
    }
    const seen = new Set(owned.map(([name]) => name));
    for (const name of kernel.keys()) if (!seen.has(name)) drifted.push(name);
    for (const name of drifted) {
      const set = observed.get(name);
      if (set === undefined) kernel.delete(name);
      else kernel.set(name, { ...set, members: new Set(set.members) });
      this.dirtySets.add(name);
    }
    return drifted;
  }

  private requireKernel(): Map<string, CachedSet> {
    if (this.kernel === undefined) throw new Error(`ipsets of IPv${this.family}: kernel state unknown; read them first`);
    return this.kernel;
  }
}

function sameMembers(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const member of a) if (!b.has(member)) return false;
  return true;
}
