/**
 * Profile tags, workload endpoints and IP pools: zod schemas shared by CLI, agent and plugin.
 *
 * Invariants of a parsed Endpoint: `profile_ids` is always present (legacy `profile_id` is
 * converted), nets are canonical CIDRs of their family, the MAC (when present) is lower-case
 * colon form, gateways are canonical IPs or absent. Unknown members are tolerated and kept.
 */
import * as z from 'zod/mini';
import { converted, convertedNullish } from './schema-kit.js';
import { LIMITS, tooMany } from './limits.js';
import { ID_PATTERN, INTERFACE_NAME_PATTERN } from './ids.js';
import { canonicalCidr, canonicalCidrOf, canonicalIpOf, canonicalMac, type IpVersion } from './ip.js';

export const tagsSchema = z
  .array(
    z.string({ error: 'expected a tag name' }).check(z.regex(ID_PATTERN, { error: (iss) => `invalid tag ${JSON.stringify(iss.input)}` })),
    { error: 'expected a list of tags' },
  )
  .check(z.maxLength(LIMITS.tagsPerProfile, { error: tooMany('tags', LIMITS.tagsPerProfile) }));

export type Tags = z.infer<typeof tagsSchema>;

const netsOf = (version: IpVersion) =>
  z._default(
    z
      .array(
        converted(z.string(), (text) => canonicalCidrOf(version, text), (text) => `${JSON.stringify(text)} is not a valid IPv${version} CIDR`),
        { error: 'expected a list of CIDRs' },
      )
      .check(z.maxLength(LIMITS.netsPerFamily, { error: tooMany(`IPv${version} nets`, LIMITS.netsPerFamily) })),
    [],
  );

const gatewayOf = (version: IpVersion) =>
  convertedNullish((text) => canonicalIpOf(version, text), (text) => `${JSON.stringify(text)} is not a valid IPv${version} gateway`);

/** Moves a legacy `profile_id` into `profile_ids`, as Felix does. */
function withProfileIds(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const record = value as Record<string, unknown>;
  if (record.profile_ids === undefined && typeof record.profile_id === 'string') {
    const { profile_id, ...rest } = record;
    return { ...rest, profile_ids: [profile_id] };
  }
  return value;
}

export const endpointSchema = z.pipe(
  z.transform(withProfileIds),
  z.looseObject(
    {
      state: z.enum(['active', 'inactive'], { error: 'expected "active" or "inactive"' }),
      name: z
        .string({ error: 'expected an interface name' })
        .check(z.regex(INTERFACE_NAME_PATTERN, { error: 'expected an interface name (1-15 of [a-zA-Z0-9_-])' })),
      mac: convertedNullish(canonicalMac, (text) => `invalid MAC address ${JSON.stringify(text)}`),
      profile_ids: z
        .array(
          z.string().check(z.regex(ID_PATTERN, { error: (iss) => `invalid profile id ${JSON.stringify(iss.input)}` })),
          { error: 'expected a list of profile ids' },
        )
        .check(z.maxLength(LIMITS.profilesPerEndpoint, { error: tooMany('profile ids', LIMITS.profilesPerEndpoint) })),
      ipv4_nets: netsOf(4),
      ipv6_nets: netsOf(6),
      ipv4_gateway: gatewayOf(4),
      ipv6_gateway: gatewayOf(6),
    },
    { error: 'expected an endpoint object' },
  ),
);

export type Endpoint = z.infer<typeof endpointSchema>;

export const poolSchema = z.looseObject(
  {
    cidr: converted(z.string({ error: 'expected a CIDR' }), canonicalCidr, (text) => `invalid CIDR ${JSON.stringify(text)}`),
    masquerade: z.optional(z.boolean({ error: 'expected a boolean' })),
    ipip: z.optional(z.string()),
    disabled: z.optional(z.boolean({ error: 'expected a boolean' })),
  },
  { error: 'expected a pool object' },
);

export type Pool = z.infer<typeof poolSchema>;
