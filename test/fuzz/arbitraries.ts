/**
 * fast-check generators shared by the fuzz tests: ids and tags, IP addresses and their textual
 * variants, VALID rules (respecting every constraint of the model's ruleSchema), rules that the
 * `calicoctl profile … rule add` grammar can express (snapshots are built in
 * compiler-robustness.test.ts from these).
 *
 * Every property runs with `fuzzParams(numRuns)`: a fixed seed (override with FUZZ_SEED=<n> to
 * explore; fast-check prints the seed and the shrunk counterexample of any failure).
 */
import fc from 'fast-check';
import { formatIp, PROTOCOL_NAMES, type IpVersion } from '../../src/model/index.js';

const FIXED_SEED = 0x0ca11c0;

export function fuzzParams(numRuns: number): fc.Parameters<unknown> {
  const fromEnv = process.env.FUZZ_SEED;
  return { seed: fromEnv === undefined ? FIXED_SEED : Number(fromEnv), numRuns };
}

// ---- Identifiers ---------------------------------------------------------------------------

const ID_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-';

/** Strings matching ID_PATTERN (`^[a-zA-Z0-9_.-]+$`), sometimes long enough to need shortening. */
export const idArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: fc.constantFrom(...ID_CHARS), minLength: 1, maxLength: 12 }) },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom(...ID_CHARS), minLength: 20, maxLength: 60 }) },
  // Words of the CLI grammar and look-alikes of other syntax are valid ids too.
  { weight: 1, arbitrary: fc.constantFrom('from', 'to', 'tag', 'cidr', 'ports', 'tcp', 'icmp', 'type', 'code', 'allow', '1.2', '_', '-', '.', '..') },
);

// ---- IP addresses --------------------------------------------------------------------------

/** Bytes biased towards 0 so zero runs (and their compression) are common. */
const byteArb = fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constant(255) }, { weight: 4, arbitrary: fc.nat(255) });

export const ipv4BytesArb = fc.array(fc.nat(255), { minLength: 4, maxLength: 4 });

/** 16 bytes, sometimes IPv4-mapped (`::ffff:a.b.c.d`) or IPv4-compatible (`::a.b.c.d`). */
export const ipv6BytesArb: fc.Arbitrary<number[]> = fc.oneof(
  { weight: 6, arbitrary: fc.array(byteArb, { minLength: 16, maxLength: 16 }) },
  { weight: 1, arbitrary: ipv4BytesArb.map((v4) => [...new Array<number>(10).fill(0), 0xff, 0xff, ...v4]) },
  { weight: 1, arbitrary: ipv4BytesArb.map((v4) => [...new Array<number>(12).fill(0), ...v4]) },
);

export const bytesOf = (version: IpVersion): fc.Arbitrary<number[]> => (version === 4 ? ipv4BytesArb : ipv6BytesArb);

const groupsOf = (bytes: readonly number[]): number[] =>
  Array.from({ length: 8 }, (_, i) => (bytes[2 * i]! << 8) | bytes[2 * i + 1]!);

/**
 * A random textual variant of an IPv6 address: any run of zero groups (or none) compressed to
 * `::`, random case and leading zeros per group, optionally the last 32 bits as a dotted quad.
 * Every variant is valid RFC 4291 text.
 */
export function ipv6VariantArb(bytes: readonly number[]): fc.Arbitrary<string> {
  const groups = groupsOf(bytes);
  return fc
    .record({
      dottedTail: fc.boolean(),
      runPick: fc.nat(),
      padding: fc.array(fc.nat(3), { minLength: 8, maxLength: 8 }),
      upper: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
    })
    .map(({ dottedTail, runPick, padding, upper }) => {
      const hexCount = dottedTail ? 6 : 8;
      const text = groups.slice(0, hexCount).map((g, i) => {
        const hex = g.toString(16).padStart(Math.min(4, g.toString(16).length + padding[i]!), '0');
        return upper[i] ? hex.toUpperCase() : hex;
      });
      // Candidate zero runs [start, end) among the hex groups; index 0 of candidates = none.
      const runs: [number, number][] = [];
      for (let s = 0; s < hexCount; s++) {
        for (let e = s + 1; e <= hexCount && groups[e - 1] === 0; e++) runs.push([s, e]);
      }
      const choice = runPick % (runs.length + 1);
      const tail = dottedTail ? [bytes.slice(12).join('.')] : [];
      if (choice === 0) return [...text, ...tail].join(':');
      const [s, e] = runs[choice - 1]!;
      const left = text.slice(0, s).join(':');
      const right = [...text.slice(e), ...tail].join(':');
      return `${left}::${right}`;
    });
}

/** A CIDR of `version`: canonical text, a non-canonical variant, or a bare address. */
export function cidrTextArb(version: IpVersion): fc.Arbitrary<string> {
  const maxPrefix = version === 4 ? 32 : 128;
  return fc
    .record({ bytes: bytesOf(version), prefix: fc.nat(maxPrefix), form: fc.constantFrom('canonical', 'variant', 'bare', 'short') })
    .chain(({ bytes, prefix, form }) => {
      if (version === 6) {
        if (form === 'canonical') return fc.constant(`${formatIp(6, bytes)}/${prefix}`);
        return ipv6VariantArb(bytes).map((text) => (form === 'bare' ? text : `${text}/${prefix}`));
      }
      if (form === 'bare') return fc.constant(bytes.join('.'));
      if (form === 'short') {
        // netaddr short form: trailing zero octets dropped, only with a prefix (`10/8`).
        let parts = [...bytes];
        while (parts.length > 1 && parts.at(-1) === 0) parts = parts.slice(0, -1);
        return fc.constant(`${parts.join('.')}/${prefix}`);
      }
      return fc.constant(`${bytes.join('.')}/${prefix}`);
    });
}

// ---- Valid rules ---------------------------------------------------------------------------

/** Protocol spellings the schema accepts: names, numbers 1–255 as numbers or (non-canonical) strings. */
const protocolArb: fc.Arbitrary<string | number> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...PROTOCOL_NAMES) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 255 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 255 }).map((n) => String(n).padStart(3, '0')) },
  { weight: 1, arbitrary: fc.constantFrom(6, 17, '58', '1', '132', '136', '006') },
);

const PROTOCOL_BY_NUMBER: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6', 132: 'sctp', 136: 'udplite' };

function nameOf(protocol: string | number | undefined): string | undefined {
  if (protocol === undefined) return undefined;
  if (typeof protocol === 'string' && !/^\d+$/.test(protocol)) return protocol;
  return PROTOCOL_BY_NUMBER[Number(protocol)] ?? String(Number(protocol));
}

/** Ports as stored: integers 0–65535 and `"lo:hi"` strings with lo < hi (leading zeros allowed). */
const portArb: fc.Arbitrary<number | string> = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 65535 }) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.integer({ min: 0, max: 65534 }), fc.integer({ min: 1, max: 65535 }))
      .filter(([a, b]) => a !== b)
      .map(([a, b]) => `${Math.min(a, b)}:${Math.max(a, b)}`),
  },
  { weight: 1, arbitrary: fc.constantFrom('0007:0010', '0:65535', '1:2') },
);

const portsArb = fc.array(portArb, { maxLength: 20 });
const icmpValueArb = fc.integer({ min: 0, max: 254 });

/** Optional member: absent, present, or (rarely) JSON null, which the schema drops. */
function member<T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | null | undefined> {
  return fc.oneof({ weight: 5, arbitrary: fc.constant(undefined) }, { weight: 4, arbitrary: arb }, { weight: 1, arbitrary: fc.constant(null) });
}

/**
 * Raw rule objects (as JSON would hold them) that the model's ruleSchema must accept: ports only
 * with a port protocol, ICMP criteria only with icmp/icmpv6 (a code only with its type), one IP
 * family across ip_version, icmp/icmpv6 and all four nets.
 */
export const validRawRuleArb: fc.Arbitrary<Record<string, unknown>> = fc
  .record({
    action: member(fc.constantFrom('allow', 'deny')),
    protocol: fc.option(protocolArb, { nil: undefined }),
    notProtocol: member(protocolArb),
    family: fc.constantFrom<IpVersion>(4, 6),
    withIpVersion: fc.boolean(),
    seed: fc.nat(),
  })
  .chain(({ action, protocol, notProtocol, family: chosen, withIpVersion, seed }) => {
    const name = nameOf(protocol);
    const family: IpVersion = name === 'icmp' ? 4 : name === 'icmpv6' ? 6 : chosen;
    const ports = name !== undefined && ['tcp', 'udp', 'sctp', 'udplite'].includes(name);
    const icmp = name === 'icmp' || name === 'icmpv6';
    const none = fc.constant(undefined);
    return fc
      .record({
        src_tag: member(idArb),
        '!src_tag': member(idArb),
        dst_tag: member(idArb),
        '!dst_tag': member(idArb),
        src_net: member(cidrTextArb(family)),
        '!src_net': member(cidrTextArb(family)),
        dst_net: member(cidrTextArb(family)),
        '!dst_net': member(cidrTextArb(family)),
        src_ports: ports ? member(portsArb) : none,
        '!src_ports': ports ? member(portsArb) : none,
        dst_ports: ports ? member(portsArb) : none,
        '!dst_ports': ports ? member(portsArb) : none,
        icmp: icmp ? fc.tuple(member(icmpValueArb), member(icmpValueArb)) : fc.constant([undefined, undefined] as const),
        notIcmp: icmp ? fc.tuple(member(icmpValueArb), member(icmpValueArb)) : fc.constant([undefined, undefined] as const),
        order: fc.nat(),
      })
      .map(({ icmp: [type, code], notIcmp: [notType, notCode], order, ...rest }) => {
        const entries: [string, unknown][] = [
          ['action', action],
          ['protocol', protocol],
          ['!protocol', notProtocol],
          ['ip_version', withIpVersion ? family : undefined],
          ['icmp_type', type],
          // A code needs its type: drop it when the type is absent or null.
          ['icmp_code', type === undefined || type === null ? undefined : code],
          ['!icmp_type', notType],
          ['!icmp_code', notType === undefined || notType === null ? undefined : notCode],
          ...Object.entries(rest),
        ];
        const present = entries.filter(([, v]) => v !== undefined);
        // Member order varies (it matters for the stored form's order-keeping decode).
        const rotation = present.length === 0 ? 0 : (order + seed) % present.length;
        return Object.fromEntries([...present.slice(rotation), ...present.slice(0, rotation)]);
      });
  });

// ---- Rules the CLI grammar can express ----------------------------------------------------

export interface GrammarRule {
  action: 'allow' | 'deny';
  protocol?: 'tcp' | 'udp' | 'icmp' | 'icmpv6';
  icmp?: { type: number; code?: number };
  from: { ports?: (number | string)[]; tag?: string; cidr?: string };
  to: { ports?: (number | string)[]; tag?: string; cidr?: string };
}

/** Ports as `calicoctl` builds them (canonical: integers, `lo:hi` without leading zeros). */
const cliPortArb: fc.Arbitrary<number | string> = fc.oneof(
  fc.integer({ min: 0, max: 65535 }),
  fc
    .tuple(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 }))
    .filter(([a, b]) => a !== b)
    .map(([a, b]) => `${Math.min(a, b)}:${Math.max(a, b)}`),
);

export const grammarRuleArb: fc.Arbitrary<GrammarRule> = fc
  .record({
    action: fc.constantFrom<'allow' | 'deny'>('allow', 'deny'),
    protocol: fc.option(fc.constantFrom<'tcp' | 'udp' | 'icmp' | 'icmpv6'>('tcp', 'udp', 'icmp', 'icmpv6'), { nil: undefined }),
    family: fc.constantFrom<IpVersion>(4, 6),
  })
  .chain(({ action, protocol, family: chosen }) => {
    const family: IpVersion = protocol === 'icmp' ? 4 : protocol === 'icmpv6' ? 6 : chosen;
    const withPorts = protocol === 'tcp' || protocol === 'udp';
    const side = fc.record(
      {
        ports: withPorts ? fc.array(cliPortArb, { minLength: 1, maxLength: 6 }) : fc.constant(undefined),
        tag: idArb,
        cidr: cidrTextArb(family),
      },
      { requiredKeys: [] },
    );
    const icmp =
      protocol === 'icmp' || protocol === 'icmpv6'
        ? fc.option(fc.record({ type: icmpValueArb, code: icmpValueArb }, { requiredKeys: ['type'] }), { nil: undefined })
        : fc.constant(undefined);
    return fc.record({ from: side, to: side, icmp }).map(({ from, to, icmp: icmpCriteria }) => {
      const rule: GrammarRule = { action, from: dropUndefined(from), to: dropUndefined(to) };
      if (protocol !== undefined) rule.protocol = protocol;
      if (icmpCriteria !== undefined) rule.icmp = icmpCriteria;
      return rule;
    });
  });

function dropUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

/** The stored-rule JSON object calicoctl writes for a grammar rule. */
export function grammarRuleToRaw(rule: GrammarRule): Record<string, unknown> {
  const raw: Record<string, unknown> = { action: rule.action };
  if (rule.protocol !== undefined) raw.protocol = rule.protocol;
  if (rule.icmp !== undefined) {
    raw.icmp_type = rule.icmp.type;
    if (rule.icmp.code !== undefined) raw.icmp_code = rule.icmp.code;
  }
  for (const [side, ends] of [['src', rule.from], ['dst', rule.to]] as const) {
    if (ends.ports !== undefined) raw[`${side}_ports`] = ends.ports;
    if (ends.tag !== undefined) raw[`${side}_tag`] = ends.tag;
    if (ends.cidr !== undefined) raw[`${side}_net`] = ends.cidr;
  }
  return raw;
}
