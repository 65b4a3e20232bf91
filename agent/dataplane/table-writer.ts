/**
 * One iptables table of one IP family, after Felix's `iptables.Table`: it holds what it believes
 * the kernel has in our chains (their rule hashes) and which chains are dirty, and turns the dirty
 * ones into restore text. Desired chains come from the calculation graph's live view.
 *
 *   markDirty(names) ──▶ planUpdates() → write → commitUpdates()
 *                        planDeletions() → write → commitDeletions()
 *   read from the kernel ──▶ adopt(state): every chain dirty (a full comparison)
 *   background read ──▶ verify(state): what differs from our cache is drift: adopted and dirty
 *
 * Invariants:
 * - Only chains named by `isOwnedChain` and our hooks in the built-ins are ever written; a
 *   built-in is never flushed. A chain whose hashes already match is not rewritten (0 bytes).
 * - After a failed write the caller calls `forget()`: the cache is unknown until the next
 *   `adopt`, and the dirty names are kept, so nothing pending is lost.
 * - plan/commit pairs run in the order above with no `markDirty` in between (the reconciler
 *   takes the graph's changes only at the start of a pass).
 * - A chain whose deletion the kernel refuses (a rule we do not own jumps to it) is left in place,
 *   never flushed, and tried again after the next read-back (`retryRefused`).
 */
import {
  isOwnedChain,
  planChainDeletions,
  planChainUpdates,
  planHookRepair,
  sameHashes,
  type BuiltinRule,
  type ChainSpec,
  type DesiredFamily,
  type IpFamily,
  type KernelTableState,
  type TableName,
} from '../../compiler/index.js';

export class TableWriter {
  /** Our chains' rule hashes as the kernel holds them; undefined until read (or after a failure). */
  private kernel: Map<string, readonly (string | null)[]> | undefined;
  private builtins: ReadonlyMap<string, readonly BuiltinRule[]> = new Map();
  private hooksDirty = true;
  private readonly dirty = new Set<string>();
  private pendingUpdates: ChainSpec[] = [];
  private pendingHooks = false;
  private pendingDeletions: string[] = [];
  /** Chains we no longer want whose deletion the kernel refused (referenced from outside). */
  private readonly refused = new Set<string>();

  constructor(
    readonly family: IpFamily,
    readonly table: TableName,
    private readonly desired: DesiredFamily,
  ) {}

  /** Whether the kernel's state is known (else it must be read and adopted before planning). */
  get known(): boolean {
    return this.kernel !== undefined;
  }

  markDirty(names: Iterable<string>): void {
    for (const name of names) this.dirty.add(name);
  }

  /** Takes a state read from the kernel as the truth; every chain is compared on the next plan. */
  adopt(state: KernelTableState): void {
    this.kernel = new Map([...state.chains].filter(([name]) => isOwnedChain(name)));
    this.builtins = state.builtins;
    this.hooksDirty = true;
    for (const name of this.kernel.keys()) this.dirty.add(name);
    for (const name of this.desired.chainNames(this.table)) this.dirty.add(name);
  }

  forget(): void {
    this.kernel = undefined;
  }

  /** Forgets every chain's hashes, so the next plan rewrites all our chains whole. */
  forgetHashes(): void {
    if (this.kernel === undefined) return;
    for (const name of this.kernel.keys()) this.kernel.set(name, [null]);
    this.markDirty(this.desired.chainNames(this.table));
  }

  /** Restore text writing every dirty chain whose hashes differ, and the hooks if they need it. */
  planUpdates(): string {
    const kernel = this.requireKernel();
    this.pendingUpdates = [];
    for (const name of [...this.dirty].sort()) {
      const chain = this.desired.chain(this.table, name);
      if (chain !== undefined && !sameHashes(chain.hashes, kernel.get(name))) this.pendingUpdates.push(chain);
    }
    const hookLines = this.hooksDirty ? planHookRepair(this.desired.hooks(this.table), this.builtins) : '';
    this.pendingHooks = this.hooksDirty;
    return planChainUpdates(this.table, this.pendingUpdates, hookLines);
  }

  commitUpdates(): void {
    const kernel = this.requireKernel();
    for (const chain of this.pendingUpdates) kernel.set(chain.name, chain.hashes);
    if (this.pendingHooks) {
      this.builtins = new Map(this.desired.hooks(this.table).map((hook) => [hook.builtin, [{ hash: hook.hash, rule: hook.rule }]]));
      this.hooksDirty = false;
    }
    this.pendingUpdates = [];
  }

  /** Restore text deleting the dirty chains we own that are no longer wanted. */
  planDeletions(): string {
    const kernel = this.requireKernel();
    this.pendingDeletions = [...this.dirty].filter((name) => kernel.has(name) && this.desired.chain(this.table, name) === undefined).sort();
    return planChainDeletions(this.table, this.pendingDeletions);
  }

  /** The chains the last `planDeletions` deletes. */
  get plannedDeletions(): readonly string[] {
    return this.pendingDeletions;
  }

  /** Restore text deleting one of the planned chains alone. */
  planDeletionOf(name: string): string {
    return planChainDeletions(this.table, [name]);
  }

  /**
   * The deletions were written, except `refused` (still referenced by a rule we do not own): those
   * stay in the kernel, and in the cache, until `retryRefused` marks them for another attempt.
   */
  commitDeletions(refused: ReadonlySet<string> = new Set()): void {
    const kernel = this.requireKernel();
    for (const name of this.pendingDeletions) {
      if (refused.has(name)) this.refused.add(name);
      else kernel.delete(name);
    }
    this.pendingDeletions = [];
    this.dirty.clear();
  }

  /** Marks the chains whose deletion was refused for another attempt; false when there are none. */
  retryRefused(): boolean {
    if (this.refused.size === 0) return false;
    this.markDirty(this.refused);
    this.refused.clear();
    return true;
  }

  /**
   * Compares a state read back (while none of our writes to this table ran) with the cache.
   * Differences are drift: the read state is adopted for them and they are marked dirty.
   * Returns the drifted chain names (`<hooks>` for the hooks).
   */
  verify(observed: KernelTableState): string[] {
    const kernel = this.requireKernel();
    const drifted: string[] = [];
    const owned = new Map([...observed.chains].filter(([name]) => isOwnedChain(name)));
    for (const [name, hashes] of owned) if (!sameHashes(hashes, kernel.get(name))) drifted.push(name);
    for (const name of kernel.keys()) if (!owned.has(name)) drifted.push(name);
    const hooksDrifted = planHookRepair(this.desired.hooks(this.table), observed.builtins) !== '' && !this.hooksDirty;
    if (hooksDrifted) drifted.push('<hooks>');
    if (drifted.length === 0) return drifted;
    this.kernel = owned;
    this.builtins = observed.builtins;
    this.hooksDirty ||= hooksDrifted;
    for (const name of drifted) if (name !== '<hooks>') this.dirty.add(name);
    return drifted;
  }

  /**
   * Compares the built-in chains we hook, read alone (the fast hook check), with the desired
   * hooks; when they differ (our hook gone, moved from position 1, or duplicated) the read rules
   * are adopted and the hooks repaired by the next plan. Returns whether they differed.
   */
  verifyHooks(observed: ReadonlyMap<string, readonly BuiltinRule[]>): boolean {
    if (this.kernel === undefined || this.hooksDirty) return false;
    if (planHookRepair(this.desired.hooks(this.table), observed) === '') return false;
    this.builtins = observed;
    this.hooksDirty = true;
    return true;
  }

  private requireKernel(): Map<string, readonly (string | null)[]> {
    if (this.kernel === undefined) throw new Error(`${this.table} table of IPv${this.family}: kernel state unknown; read it first`);
    return this.kernel;
  }
}
