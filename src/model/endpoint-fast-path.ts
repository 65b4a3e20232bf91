/**
 * A fast path for the common endpoint value: the agent decodes one per endpoint in the cluster
 * (100k at start-up), and zod's generic machinery costs several times the JSON parse itself.
 *
 * Invariant: for every JSON value it accepts, `fastEndpoint(value)` equals what
 * `endpointSchema.parse(value)` returns (same members, same canonical forms, `undefined` for a
 * null `mac`/gateway that is present). For anything else — a member it does not know (kept by the
 * schema's loose object), a legacy `profile_id` beside `profile_ids`, any invalid field — it
 * returns undefined and the caller runs the schema, which produces the value or the one-line
 * reason. It therefore never decides that a value is invalid. A property test holds it to the
 * schema.
 */
import type { Endpoint } from './endpoint.js';
import { ID_PATTERN, INTERFACE_NAME_PATTERN } from './ids.js';
import { canonicalCidrOf, canonicalIpOf, canonicalMac, type IpVersion } from './ip.js';
import { LIMITS } from './limits.js';

const KNOWN_MEMBERS = new Set(['state', 'name', 'mac', 'profile_ids', 'profile_id', 'ipv4_nets', 'ipv6_nets', 'ipv4_gateway', 'ipv6_gateway']);

/** The schema's output for `value`, or undefined when only the schema can say. */
export function fastEndpoint(value: unknown): Endpoint | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const input = value as Record<string, unknown>;
  for (const key in input) if (!KNOWN_MEMBERS.has(key)) return undefined;

  const { state, name } = input;
  if (state !== 'active' && state !== 'inactive') return undefined;
  if (typeof name !== 'string' || !INTERFACE_NAME_PATTERN.test(name)) return undefined;

  let profileIds = input.profile_ids;
  if ('profile_id' in input) {
    // The schema moves a legacy string `profile_id` into an absent `profile_ids`; any other
    // combination keeps `profile_id` as an unknown member.
    if (profileIds !== undefined || typeof input.profile_id !== 'string') return undefined;
    profileIds = [input.profile_id];
  }
  if (!Array.isArray(profileIds) || profileIds.length > LIMITS.profilesPerEndpoint) return undefined;
  for (const id of profileIds) if (typeof id !== 'string' || !ID_PATTERN.test(id)) return undefined;

  const ipv4Nets = nets(input.ipv4_nets, 4);
  const ipv6Nets = nets(input.ipv6_nets, 6);
  if (ipv4Nets === undefined || ipv6Nets === undefined) return undefined;

  const endpoint: Record<string, unknown> = { state, name };
  if ('mac' in input && !optional(endpoint, 'mac', input.mac, canonicalMac)) return undefined;
  endpoint.profile_ids = profileIds;
  endpoint.ipv4_nets = ipv4Nets;
  endpoint.ipv6_nets = ipv6Nets;
  if ('ipv4_gateway' in input && !optional(endpoint, 'ipv4_gateway', input.ipv4_gateway, (text) => canonicalIpOf(4, text))) return undefined;
  if ('ipv6_gateway' in input && !optional(endpoint, 'ipv6_gateway', input.ipv6_gateway, (text) => canonicalIpOf(6, text))) return undefined;
  return endpoint as Endpoint;
}

/** Canonical nets of one family (absent: none), or undefined. */
function nets(value: unknown, version: IpVersion): string[] | undefined {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length > LIMITS.netsPerFamily) return undefined;
  const out: string[] = [];
  for (const text of value) {
    if (typeof text !== 'string') return undefined;
    const canonical = canonicalCidrOf(version, text);
    if (canonical === undefined) return undefined;
    out.push(canonical);
  }
  return out;
}

/** Sets a nullable string member (null → undefined); false when the text does not convert. */
function optional(endpoint: Record<string, unknown>, key: string, value: unknown, convert: (text: string) => string | undefined): boolean {
  if (value === null) {
    endpoint[key] = undefined;
    return true;
  }
  if (typeof value !== 'string') return false;
  const converted = convert(value);
  if (converted === undefined) return false;
  endpoint[key] = converted;
  return true;
}
