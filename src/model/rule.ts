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
import { z } from 'zod';
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

const portSchema = z.union([z.number(), z.string()]).superRefine((port, ctx) => {
  const reason = portError(port);
  if (reason) ctx.addIssue({ code: 'custom', message: `invalid port ${JSON.stringify(port)} (${reason})` });
});

const portsSchema = z.array(portSchema, { error: 'expected a list of ports' });

const tagSchema = z
  .string({ error: 'expected a tag name' })
  .regex(ID_PATTERN, { error: (iss) => `invalid tag ${JSON.stringify(iss.input)}` });

const netSchema = z.string({ error: 'expected a CIDR' }).transform((text, ctx) => {
  const canonical = canonicalCidr(text);
  if (canonical === undefined) {
    ctx.addIssue({ code: 'custom', message: `invalid CIDR ${JSON.stringify(text)}` });
    return z.NEVER;
  }
  return canonical;
});

const protocolSchema = z.union([z.string(), z.number()]).transform((raw, ctx) => {
  const text = String(raw);
  if ((PROTOCOL_NAMES as readonly string[]).includes(text)) return text;
  if (/^\d{1,3}$/.test(text) && Number(text) >= 1 && Number(text) <= 255) return String(Number(text));
  ctx.addIssue({ code: 'custom', message: `invalid protocol ${JSON.stringify(raw)}` });
  return z.NEVER;
});

const icmpSchema = z
  .number({ error: 'expected an integer' })
  .int({ error: 'expected an integer' })
  .min(0, { error: 'out of range (0-254)' })
  .max(254, { error: 'out of range (0-254; 255 is the kernel wildcard)' });

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
  action: z.enum(['allow', 'deny'], { error: 'expected "allow" or "deny"' }).optional(),
  protocol: protocolSchema.optional(),
  '!protocol': protocolSchema.optional(),
  src_tag: tagSchema.optional(),
  '!src_tag': tagSchema.optional(),
  dst_tag: tagSchema.optional(),
  '!dst_tag': tagSchema.optional(),
  src_net: netSchema.optional(),
  '!src_net': netSchema.optional(),
  dst_net: netSchema.optional(),
  '!dst_net': netSchema.optional(),
  src_ports: portsSchema.optional(),
  '!src_ports': portsSchema.optional(),
  dst_ports: portsSchema.optional(),
  '!dst_ports': portsSchema.optional(),
  icmp_type: icmpSchema.optional(),
  '!icmp_type': icmpSchema.optional(),
  icmp_code: icmpSchema.optional(),
  '!icmp_code': icmpSchema.optional(),
  ip_version: z.union([z.literal(4), z.literal(6)], { error: 'expected 4 or 6' }).optional(),
};

/** Drops members whose value is JSON null, as Felix does before validating. */
function withoutNulls(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null));
}

const NET_KEYS = ['src_net', 'dst_net', '!src_net', '!dst_net'] as const;
const PORT_KEYS = ['src_ports', 'dst_ports', '!src_ports', '!dst_ports'] as const;
const ICMP_KEYS = ['icmp_type', 'icmp_code', '!icmp_type', '!icmp_code'] as const;

export const ruleSchema = z.preprocess(
  withoutNulls,
  z
    .strictObject(ruleShape, {
      error: (iss) =>
        iss.code === 'unrecognized_keys'
          ? `unknown member(s) ${iss.keys.map((k) => JSON.stringify(k)).join(', ')}`
          : 'expected a rule object',
    })
    .superRefine((rule, ctx) => {
      const protocol = rule.protocol === undefined ? undefined : protocolName(rule.protocol);
      for (const key of PORT_KEYS) {
        if (rule[key] !== undefined && (protocol === undefined || !PORT_PROTOCOLS.has(protocol))) {
          ctx.addIssue({
            code: 'custom',
            path: [key],
            message: `ports need protocol tcp, udp, sctp or udplite (protocol is ${protocol ?? 'unset'})`,
          });
        }
      }
      for (const key of ICMP_KEYS) {
        if (rule[key] !== undefined && protocol !== 'icmp' && protocol !== 'icmpv6') {
          ctx.addIssue({
            code: 'custom',
            path: [key],
            message: `ICMP criteria need protocol icmp or icmpv6 (protocol is ${protocol ?? 'unset'})`,
          });
        }
      }
      if (rule.icmp_code !== undefined && rule.icmp_type === undefined) {
        ctx.addIssue({ code: 'custom', path: ['icmp_code'], message: 'ICMP code specified without ICMP type' });
      }
      if (rule['!icmp_code'] !== undefined && rule['!icmp_type'] === undefined) {
        ctx.addIssue({ code: 'custom', path: ['!icmp_code'], message: 'ICMP code specified without ICMP type' });
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
      if (versions.size > 1) {
        ctx.addIssue({
          code: 'custom',
          message: `mixes IPv4 (${versions.get(4)}) and IPv6 (${versions.get(6)})`,
        });
      }
    }),
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
  z.array(ruleSchema, { error: (iss) => (iss.input === undefined ? 'required' : `expected ${name} to be a list`) });

/**
 * The stored rules object. `id` is the calicoctl ≤ v0.20 artefact: accepted, ignored by the
 * agent, checked against the profile name by `rule update`, never written.
 */
export const rulesSchema = z.strictObject(
  {
    id: z.string({ error: 'expected a string' }).optional(),
    inbound_rules: ruleListSchema('inbound_rules'),
    outbound_rules: ruleListSchema('outbound_rules'),
  },
  {
    error: (iss) =>
      iss.code === 'unrecognized_keys'
        ? `unknown member(s) ${iss.keys.map((k) => JSON.stringify(k)).join(', ')}`
        : 'expected a rules object',
  },
);

export type Rules = z.infer<typeof rulesSchema>;

/** Default rules of a new profile: inbound `allow from tag <P>`, outbound `allow`. */
export function defaultRules(profile: string): Rules {
  return {
    inbound_rules: [{ action: 'allow', src_tag: profile }],
    outbound_rules: [{ action: 'allow' }],
  };
}
