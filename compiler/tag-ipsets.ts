/**
 * Tag ipsets (Felix §3.11, as `hash:net`): one set per (family, tag referenced by a rendered
 * rule); its members are the addresses of every endpoint in the cluster (any host, any state)
 * that has a profile carrying the tag.
 *
 * Invariants: members are written in the form `ipset save` prints them (a host prefix as the
 * bare address, a wider net as its masked CIDR), deduplicated and sorted; maxelem is the
 * configured size unless the members do not fit, in which case it is raised to the next power
 * of two (reported as a Diagnostic) rather than silently dropping members.
 */
import { cidrAddress, maskedCidr, type IpVersion } from '../src/model/index.js';
import { ipsetTooLarge } from './diagnostics.js';
import { tagIpsetName } from './names.js';
import type { Diagnostic, IpsetSpec } from './types.js';

/** `10.0.0.1/32` → `10.0.0.1`, `10.0.0.1/24` → `10.0.0.0/24`, `2001:db8::1/128` → `2001:db8::1`. */
export function memberForm(cidr: string): string {
  const hostPrefix = cidr.includes(':') ? '/128' : '/32';
  if (cidr.endsWith(hostPrefix)) return cidrAddress(cidr);
  return maskedCidr(cidr) ?? cidr;
}

/** maxelem of a set of `size` members: the configured size, or the next power of two above it. */
export function ipsetMaxelem(size: number, maxIpsetSize: number): number {
  return size > maxIpsetSize ? 2 ** Math.ceil(Math.log2(size)) : maxIpsetSize;
}

export interface BuiltIpset {
  spec: IpsetSpec;
  diagnostic?: Diagnostic;
}

/** Builds the set for `tag` from its (possibly duplicated, unsorted) member addresses. */
export function buildTagIpset(
  tag: string,
  family: IpVersion,
  members: readonly string[],
  maxIpsetSize: number,
): BuiltIpset {
  const unique = [...new Set(members)].sort();
  const name = tagIpsetName(tag, family);
  const maxelem = ipsetMaxelem(unique.length, maxIpsetSize);
  const diagnostic = unique.length > maxIpsetSize ? ipsetTooLarge(name, tag, family, unique.length, maxIpsetSize, maxelem) : undefined;
  const spec: IpsetSpec = { name, family: family === 4 ? 'inet' : 'inet6', type: 'hash:net', maxelem, members: unique };
  return diagnostic === undefined ? { spec } : { spec, diagnostic };
}
