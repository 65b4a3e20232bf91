/**
 * Rules and rules objects (`/calico/v1/policy/profile/<id>/rules`): the zod schema is the one
 * definition used by calicoctl (before writing) and by the agent (after reading).
 *
 * Invariants of a parsed Rule:
 * - members whose JSON value was `null` are dropped (Felix does the same);
 * - `protocol` is a string: a name (`tcp`, `udp`, `icmp`, `icmpv6`, `sctp`, `udplite`) or a
 *   decimal number 1–255;
 * - nets are canonical CIDRs (host bits kept); ports are integers or `"lo:hi"` strings, lo < hi;
 * - a rule never mixes IPv4 and IPv6 (nets, `icmp`/`icmpv6`, `ip_version` all agree), so
 *   `ruleIpVersion` is well defined; port and ICMP criteria only appear with a protocol that
 *   supports them. Stricter than Felix 1.x, which silently widened such rules.
 */
import * as z from 'zod/mini';
import { converted, customCheck } from './schema-kit.js';
import { LIMITS, tooMany } from './limits.js';
import { ID_PATTERN } from './ids.js';
import { canonicalCidr, cidrVersion, type IpVersion } from './ip.js';

export const PROTOCOL_NAMES = ['tcp', 'udp', 'icmp', 'icmpv6', 'sctp', 'udplite'] as const;

/** Protocol numbers of the named protocols, for normalising numeric input. */
export const PROTOCOL_NUMBERS: Readonly<Record<string, string>> = {
  '1': 'icmp',
  '6': 'tcp',
  '17': 'udp',
  '58': 'icmpv6',
  '132': 'sctp',
  '136': 'udplite',
};

/** Protocols whose rules may carry port criteria (iptables `multiport` supports these). */
export const PORT_PROTOCOLS: ReadonlySet<string> = new Set(['tcp', 'udp', 'sctp', 'udplite']);

/** The protocol's name where it has one, so `"6"` and `"tcp"` are treated alike. */
export function protocolName(protocol: string): string {
  return PROTOCOL_NUMBERS[protocol] ?? protocol;
}

export type Port = number | string;

/** Why a port entry is invalid, or undefined when it is valid (Felix `validate_rule_port`). */
export function portError(port: unknown): string | undefined {
  if (typeof port === 'number') {
    if (!Number.isInteger(port)) return 'not an integer';
    return port >= 0 && port <= 65535 ? undefined : 'integer out of range';
  }
  if (typeof port !== 'string') return 'neither integer nor string';
  const parts = port.split(':');
  if (parts.length !== 2) return 'range unparseable';
  if (!parts.every((p) => /^\d+$/.test(p))) return 'range invalid';
  const [lo, hi] = parts.map(Number) as [number, number];
  return lo < hi && hi <= 65535 ? undefined : 'range invalid';
}

const portSchema = z.union([z.number(), z.string()]).check(
  customCheck((port) => {
    const reason = portError(port);
    return reason ? `invalid port ${JSON.stringify(port)} (${reason})` : undefined;
  }),
);

const portsSchema = z
  .array(portSchema, { error: 'expected a list of ports' })
  .check(z.maxLength(LIMITS.portsPerList, { error: tooMany('ports', LIMITS.portsPerList) }));

const tagSchema = z
  .string({ error: 'expected a tag name' })
  .check(z.regex(ID_PATTERN, { error: (iss) => `invalid tag ${JSON.stringify(iss.input)}` }));

const netSchema = converted(z.string({ error: 'expected a CIDR' }), canonicalCidr, (text) => `invalid CIDR ${JSON.stringify(text)}`);

const protocolSchema = converted(
  z.union([z.string(), z.number()]),
  (raw): string | undefined => {
    const text = String(raw);
    if ((PROTOCOL_NAMES as readonly string[]).includes(text)) return text;
    if (/^\d{1,3}$/.test(text) && Number(text) >= 1 && Number(text) <= 255) return String(Number(text));
    return undefined;
  },
  (raw) => `invalid protocol ${JSON.stringify(raw)}`,
);

const icmpSchema = z
  .int({ error: 'expected an integer' })
  .check(z.minimum(0, { error: 'out of range (0-254)' }), z.maximum(254, { error: 'out of range (0-254; 255 is the kernel wildcard)' }));

/** Criteria that may also appear negated as `"!<name>"`. */
export const NEGATABLE_KEYS = [
  'protocol',
  'src_net',
  'src_tag',
  'src_ports',
  'dst_net',
  'dst_tag',
  'dst_ports',
  'icmp_type',
  'icmp_code',
] as const;

const ruleShape = {
  action: z.optional(z.enum(['allow', 'deny'], { error: 'expected "allow" or "deny"' })),
  protocol: z.optional(protocolSchema),
  '!protocol': z.optional(protocolSchema),
  src_tag: z.optional(tagSchema),
  '!src_tag': z.optional(tagSchema),
  dst_tag: z.optional(tagSchema),
  '!dst_tag': z.optional(tagSchema),
  src_net: z.optional(netSchema),
  '!src_net': z.optional(netSchema),
  dst_net: z.optional(netSchema),
  '!dst_net': z.optional(netSchema),
  src_ports: z.optional(portsSchema),
  '!src_ports': z.optional(portsSchema),
  dst_ports: z.optional(portsSchema),
  '!dst_ports': z.optional(portsSchema),
  icmp_type: z.optional(icmpSchema),
  '!icmp_type': z.optional(icmpSchema),
  icmp_code: z.optional(icmpSchema),
  '!icmp_code': z.optional(icmpSchema),
  ip_version: z.optional(z.union([z.literal(4), z.literal(6)], { error: 'expected 4 or 6' })),
};

/** Drops members whose value is JSON null, as Felix does before validating. */
function withoutNulls(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null));
}

const NET_KEYS = ['src_net', 'dst_net', '!src_net', '!dst_net'] as const;
const PORT_KEYS = ['src_ports', 'dst_ports', '!src_ports', '!dst_ports'] as const;
const ICMP_KEYS = ['icmp_type', 'icmp_code', '!icmp_type', '!icmp_code'] as const;

/** The issues of a whole rule beyond its members' own: criteria that do not fit together. */
function ruleConflicts(rule: z.output<typeof ruleObjectSchema>, addIssue: (issue: { path?: string[]; message: string }) => void): void {
  const protocol = rule.protocol === undefined ? undefined : protocolName(rule.protocol);
  for (const key of PORT_KEYS) {
    if (rule[key] !== undefined && (protocol === undefined || !PORT_PROTOCOLS.has(protocol))) {
      addIssue({
        path: [key],
        message: `ports need protocol tcp, udp, sctp or udplite (protocol is ${protocol ?? 'unset'})`,
      });
    }
  }
  for (const key of ICMP_KEYS) {
    if (rule[key] !== undefined && protocol !== 'icmp' && protocol !== 'icmpv6') {
      addIssue({
        path: [key],
        message: `ICMP criteria need protocol icmp or icmpv6 (protocol is ${protocol ?? 'unset'})`,
      });
    }
  }
  if (rule.icmp_code !== undefined && rule.icmp_type === undefined) {
    addIssue({ path: ['icmp_code'], message: 'ICMP code specified without ICMP type' });
  }
  if (rule['!icmp_code'] !== undefined && rule['!icmp_type'] === undefined) {
    addIssue({ path: ['!icmp_code'], message: 'ICMP code specified without ICMP type' });
  }
  const versions = new Map<IpVersion, string>();
  if (rule.ip_version !== undefined) versions.set(rule.ip_version, `ip_version ${rule.ip_version}`);
  if (protocol === 'icmp') versions.set(4, versions.get(4) ?? 'protocol icmp');
  if (protocol === 'icmpv6') versions.set(6, versions.get(6) ?? 'protocol icmpv6');
  for (const key of NET_KEYS) {
    const net = rule[key];
    if (net !== undefined) {
      const v = cidrVersion(net);
      versions.set(v, versions.get(v) ?? `${key} ${net}`);
    }
  }
  if (versions.size > 1) addIssue({ message: `mixes IPv4 (${versions.get(4)}) and IPv6 (${versions.get(6)})` });
}

const unknownMembers = (iss: { code: string; keys?: readonly string[] }, what: string): string =>
  iss.code === 'unrecognized_keys' ? `unknown member(s) ${(iss.keys ?? []).map((k) => JSON.stringify(k)).join(', ')}` : `expected ${what}`;

const ruleObjectSchema = z.strictObject(ruleShape, { error: (iss) => unknownMembers(iss, 'a rule object') });

export const ruleSchema = z.pipe(
  z.transform(withoutNulls),
  ruleObjectSchema.check(
    z.check((ctx) => ruleConflicts(ctx.value, ({ path, message }) => ctx.issues.push({ code: 'custom', message, input: ctx.value, ...(path ? { path } : {}) }))),
  ),
);

export type Rule = z.infer<typeof ruleSchema>;
export type RuleKey = keyof Rule;

/** The IP version a rule is restricted to, or undefined when it applies to both. */
export function ruleIpVersion(rule: Rule): IpVersion | undefined {
  if (rule.ip_version !== undefined) return rule.ip_version;
  const protocol = rule.protocol === undefined ? undefined : protocolName(rule.protocol);
  if (protocol === 'icmp') return 4;
  if (protocol === 'icmpv6') return 6;
  for (const key of NET_KEYS) {
    const net = rule[key];
    if (net !== undefined) return cidrVersion(net);
  }
  return undefined;
}

const ruleListSchema = (name: string) =>
  z
    .array(ruleSchema, { error: (iss) => (iss.input === undefined ? 'required' : `expected ${name} to be a list`) })
    .check(z.maxLength(LIMITS.rulesPerDirection, { error: tooMany('rules', LIMITS.rulesPerDirection) }));

/**
 * The stored rules object. `id` is the calicoctl ≤ v0.20 artefact: accepted, ignored by the
 * agent, checked against the profile name by `rule update`, never written. Other top-level
 * members are dropped, as libcalico and Felix ignored them (a rule's own members stay strict).
 */
export const rulesSchema = z.object(
  {
    id: z.optional(z.string({ error: 'expected a string' })),
    inbound_rules: ruleListSchema('inbound_rules'),
    outbound_rules: ruleListSchema('outbound_rules'),
  },
  { error: 'expected a rules object' },
);

export type Rules = z.infer<typeof rulesSchema>;

/** Default rules of a new profile: inbound `allow from tag <P>`, outbound `allow`. */
export function defaultRules(profile: string): Rules {
  return {
    inbound_rules: [{ action: 'allow', src_tag: profile }],
    outbound_rules: [{ action: 'allow' }],
  };
}
