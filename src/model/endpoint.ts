/**
 * Profile tags, workload endpoints and IP pools: zod schemas shared by CLI, agent and plugin.
 *
 * Invariants of a parsed Endpoint: `profile_ids` is always present (legacy `profile_id` is
 * converted), nets are canonical CIDRs of their family, the MAC (when present) is lower-case
 * colon form, gateways are canonical IPs or absent. Unknown members are tolerated and kept.
 */
import { z } from 'zod';
import { ID_PATTERN, INTERFACE_NAME_PATTERN } from './ids.js';
import { canonicalCidr, canonicalIp, canonicalMac, cidrVersion, type IpVersion } from './ip.js';

export const tagsSchema = z.array(
  z
    .string({ error: 'expected a tag name' })
    .regex(ID_PATTERN, { error: (iss) => `invalid tag ${JSON.stringify(iss.input)}` }),
  { error: 'expected a list of tags' },
);

export type Tags = z.infer<typeof tagsSchema>;

const netsOf = (version: IpVersion) =>
  z
    .array(
      z.string().transform((text, ctx) => {
        const canonical = canonicalCidr(text);
        if (canonical === undefined || cidrVersion(canonical) !== version) {
          ctx.addIssue({ code: 'custom', message: `${JSON.stringify(text)} is not a valid IPv${version} CIDR` });
          return z.NEVER;
        }
        return canonical;
      }),
      { error: 'expected a list of CIDRs' },
    )
    .default([]);

const gatewayOf = (version: IpVersion) =>
  z
    .string()
    .nullish()
    .transform((text, ctx) => {
      if (text === null || text === undefined) return undefined;
      const canonical = canonicalIp(text);
      if (canonical === undefined || cidrVersion(canonical) !== version) {
        ctx.addIssue({ code: 'custom', message: `${JSON.stringify(text)} is not a valid IPv${version} gateway` });
        return z.NEVER;
      }
      return canonical;
    });

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

export const endpointSchema = z.preprocess(
  withProfileIds,
  z.looseObject(
    {
      state: z.enum(['active', 'inactive'], { error: 'expected "active" or "inactive"' }),
      name: z
        .string({ error: 'expected an interface name' })
        .regex(INTERFACE_NAME_PATTERN, { error: 'expected an interface name (1-15 of [a-zA-Z0-9_-])' }),
      mac: z
        .string()
        .nullish()
        .transform((text, ctx) => {
          if (text === null || text === undefined) return undefined;
          const canonical = canonicalMac(text);
          if (canonical === undefined) {
            ctx.addIssue({ code: 'custom', message: `invalid MAC address ${JSON.stringify(text)}` });
            return z.NEVER;
          }
          return canonical;
        }),
      profile_ids: z.array(
        z.string().regex(ID_PATTERN, { error: (iss) => `invalid profile id ${JSON.stringify(iss.input)}` }),
        { error: 'expected a list of profile ids' },
      ),
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
    cidr: z.string({ error: 'expected a CIDR' }).transform((text, ctx) => {
      const canonical = canonicalCidr(text);
      if (canonical === undefined) {
        ctx.addIssue({ code: 'custom', message: `invalid CIDR ${JSON.stringify(text)}` });
        return z.NEVER;
      }
      return canonical;
    }),
    masquerade: z.boolean({ error: 'expected a boolean' }).optional(),
    ipip: z.string().optional(),
    disabled: z.boolean({ error: 'expected a boolean' }).optional(),
  },
  { error: 'expected a pool object' },
);

export type Pool = z.infer<typeof poolSchema>;
