/**
 * Emulation of CPython 2.7 dict iteration order, so rule members come out of `rule json` (and
 * into stored values) in exactly the order Python calicoctl produced (reference Appendix A).
 *
 * Model: 64-bit string hash (hash randomisation off); open addressing with the
 * `i = 5*i + perturb + 1` probe, `perturb >>= 5` after each probe; resize after an insert when
 * `fill*3 >= slots*2` to the smallest power of two (>= 8) above `4*used`; a dict copy pre-sizes
 * to the smallest power of two above `2*n` when `n*3 >= 16`. Iteration = ascending slot index.
 * Pure computation; no deletions are modelled (calicoctl never deletes rule members).
 */

const MASK64 = (1n << 64n) - 1n;

/** CPython 2.7 `hash(str)` on a 64-bit build, as an unsigned 64-bit integer. */
export function pythonStringHash(text: string): bigint {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length === 0) return 0n;
  let x = BigInt(bytes[0]!) << 7n;
  for (const b of bytes) x = ((1000003n * x) & MASK64) ^ BigInt(b);
  x ^= BigInt(bytes.length);
  return x === MASK64 ? MASK64 - 1n : x;
}

class PyTable {
  slots: (string | undefined)[];
  used = 0;

  constructor(size = 8) {
    this.slots = new Array<string | undefined>(size).fill(undefined);
  }

  private place(key: string): void {
    const mask = BigInt(this.slots.length - 1);
    const hash = pythonStringHash(key);
    let i = hash & mask;
    let perturb = hash;
    while (this.slots[Number(i & mask)] !== undefined) {
      i = (i * 5n + perturb + 1n) & MASK64;
      perturb >>= 5n;
    }
    this.slots[Number(i & mask)] = key;
    this.used++;
  }

  private resize(minUsed: number): void {
    let size = 8;
    while (size <= minUsed) size <<= 1;
    const old = this.order();
    this.slots = new Array<string | undefined>(size).fill(undefined);
    this.used = 0;
    for (const key of old) this.place(key);
  }

  /** `d[key] = …` on a dict that does not hold `key` yet. */
  insert(key: string): void {
    if (this.slots.includes(key)) return;
    this.place(key);
    if (this.used * 3 >= this.slots.length * 2) this.resize(4 * this.used);
  }

  /** `dict(other)` / `other.copy()`. */
  static copyOf(other: PyTable): PyTable {
    const n = other.used;
    const table = new PyTable();
    if (n * 3 >= 16) {
      let size = 8;
      while (size <= 2 * n) size <<= 1;
      table.slots = new Array<string | undefined>(size).fill(undefined);
    }
    for (const key of other.order()) table.place(key);
    return table;
  }

  order(): string[] {
    return this.slots.filter((k): k is string => k !== undefined);
  }
}

/** Iteration order of a fresh dict after inserting `keys` in the given order. */
export function freshDictOrder(keys: readonly string[]): string[] {
  const table = new PyTable();
  for (const key of keys) table.insert(key);
  return table.order();
}

/**
 * Member order calicoctl gives a rule that starts from `keys` in the given order: three fresh
 * dicts (parsed/local dict → keyword dict → Rule object) and a copy (`Rule` → plain dict).
 */
export function calicoctlRuleOrder(keys: readonly string[]): string[] {
  const table = new PyTable();
  for (const key of freshDictOrder(freshDictOrder(keys))) table.insert(key);
  return PyTable.copyOf(table).order();
}

/** Slot order of the local variables of calicoctl's `profile_rule_add_remove` (Appendix A). */
export const RULE_ADD_LOCALS_ORDER = [
  'icmp_code',
  'icmp_type',
  'protocol',
  'dst_ports',
  'src_net',
  'src_tag',
  'action',
  'dst_net',
  'dst_tag',
  'src_ports',
] as const;

/** A copy of `object` whose members are in the order `order` (missing members skipped). */
export function withMemberOrder<T extends object>(object: T, order: readonly string[]): T {
  const source = object as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of order) if (source[key] !== undefined) out[key] = source[key];
  for (const [key, value] of Object.entries(source)) if (value !== undefined && !(key in out)) out[key] = value;
  return out as T;
}
