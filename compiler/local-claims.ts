/**
 * Addresses claimed by two local endpoints: the endpoint that claimed an address first keeps it
 * and every later claimant is refused (fail closed: its interface is not dispatched, so its
 * traffic is dropped as from an unknown interface, and it gets no routes), so that a new
 * endpoint can never take over the address, routes and return traffic of a running one.
 *
 * "First" is the etcd create revision of the endpoint's key (when known), then the key. An
 * endpoint is accepted when none of its addresses (either family, as set members: host prefixes
 * bare, /0 ignored) is held by an endpoint accepted before it; it then holds all of them. Only
 * active endpoints that won their interface take part. Pure; used by the calculation graph and
 * by compile() alike.
 */
import { memberForm } from './tag-ipsets.js';
import type { EndpointInput } from './types.js';

export interface Refusal {
  address: string;
  /** The etcd key of the endpoint that holds the address. */
  owner: string;
}

const order = ([aKey, a]: readonly [string, EndpointInput], [bKey, b]: readonly [string, EndpointInput]): number => {
  const ar = a.createRevision ?? Number.MAX_SAFE_INTEGER;
  const br = b.createRevision ?? Number.MAX_SAFE_INTEGER;
  if (ar !== br) return ar - br;
  return aKey < bKey ? -1 : aKey > bKey ? 1 : 0;
};

/** The refused endpoints among `candidates` (key → input), by key, with the address they lost. */
export function refusedByAddress(candidates: Iterable<readonly [string, EndpointInput]>): Map<string, Refusal> {
  const active = [...candidates].filter(([, input]) => input.endpoint.state === 'active').sort(order);
  const holders = new Map<string, string>();
  const refused = new Map<string, Refusal>();
  for (const [key, { endpoint }] of active) {
    const addresses = [...endpoint.ipv4_nets, ...endpoint.ipv6_nets].filter((net) => !net.endsWith('/0')).map(memberForm);
    const taken = addresses.find((address) => holders.has(address));
    if (taken !== undefined) {
      refused.set(key, { address: taken, owner: holders.get(taken)! });
      continue;
    }
    for (const address of addresses) holders.set(address, key);
  }
  return refused;
}
