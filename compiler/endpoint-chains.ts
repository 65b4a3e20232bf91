/**
 * Per-endpoint chains for local workloads (Felix §3.5, 1.3 mark scheme):
 *
 *   cali-tw-<iface>  to the workload: clear mark; for each profile in `profile_ids` order jump to
 *                    `cali-pri-<id>` and RETURN if it set the accept mark; final DROP.
 *   cali-fw-<iface>  from the workload: clear mark; MAC check (when the endpoint has a MAC);
 *                    source-IP check (mark each own address, DROP unmarked, clear mark); then
 *                    the profiles' `cali-pro-<id>` chains as above; final DROP.
 *
 * Invariants (fail closed):
 * - a profile that is missing or has no valid rules ends the chain with a DROP naming it, so the
 *   whole direction is dropped even if a later profile would accept (Appendix B.5);
 * - an inactive endpoint's chains are a single DROP (its interface stays in dispatch);
 * - an endpoint without an address of the family drops all traffic of that family it sends.
 */
import type { EndpointInput } from './types.js';
import type { IpVersion } from '../src/model/index.js';
import { buildChain, comment, hex, join } from './chain.js';
import { endpointChainName, profileChainName, type Direction } from './names.js';
import { memberForm } from './tag-ipsets.js';
import type { ChainSpec } from './types.js';

const PROFILE_ACCEPTED_COMMENT = 'Profile accepted packet';
const INCORRECT_SOURCE_MAC_COMMENT = 'Incorrect source MAC';
const INCORRECT_SOURCE_IP_COMMENT = 'Incorrect source IP';
const missingProfileComment = (id: string): string => `Profile ${id} is missing or invalid: drop`;
const inactiveEndpointComment = (endpointId: string): string => `Endpoint ${endpointId} is inactive`;
const noProfileMatchedComment = (endpointId: string): string => `Packet did not match any profile (endpoint ${endpointId})`;

/** Why an endpoint chain's DROP rule drops, from its comment (undefined: not an endpoint-chain drop). */
export type EndpointDropReason = 'anti-spoofing' | 'missing-profile' | 'inactive-endpoint' | 'default-deny';

/** Prefix tests only: a comment may be cut at the kernel's 255 characters. */
export function endpointDropReason(commentText: string): EndpointDropReason | undefined {
  if (commentText === INCORRECT_SOURCE_MAC_COMMENT || commentText === INCORRECT_SOURCE_IP_COMMENT) return 'anti-spoofing';
  if (commentText.startsWith('Packet did not match any profile')) return 'default-deny';
  if (commentText.startsWith('Endpoint ')) return 'inactive-endpoint';
  if (commentText.startsWith('Profile ') && commentText !== PROFILE_ACCEPTED_COMMENT) return 'missing-profile';
  return undefined;
}

export interface EndpointChains {
  inbound: ChainSpec;
  outbound: ChainSpec;
}

function profileJumps(
  input: EndpointInput,
  direction: Direction,
  mark: string,
  hasProfile: (id: string) => boolean,
): string[] {
  const bodies: string[] = [];
  for (const profileId of input.endpoint.profile_ids) {
    if (!hasProfile(profileId)) {
      bodies.push(join(comment(missingProfileComment(profileId)), '--jump DROP'));
      return bodies;
    }
    bodies.push(`--jump ${profileChainName(profileId, direction)}`);
    bodies.push(join(`--match mark --mark ${mark}/${mark}`, comment(PROFILE_ACCEPTED_COMMENT), '--jump RETURN'));
  }
  bodies.push(
    join(comment(noProfileMatchedComment(input.ref.endpointId)), '--jump DROP'),
  );
  return bodies;
}

export function renderEndpointChains(
  input: EndpointInput,
  family: IpVersion,
  markBit: number,
  hasProfile: (id: string) => boolean,
): EndpointChains {
  const iface = input.endpoint.name;
  const inboundName = endpointChainName(iface, 'inbound');
  const outboundName = endpointChainName(iface, 'outbound');
  if (input.endpoint.state !== 'active') {
    const drop = [join(comment(inactiveEndpointComment(input.ref.endpointId)), '--jump DROP')];
    return { inbound: buildChain(inboundName, drop), outbound: buildChain(outboundName, drop) };
  }
  const mark = hex(markBit);
  const clearMark = `--jump MARK --set-mark 0/${mark}`;

  const outbound: string[] = [clearMark];
  if (input.endpoint.mac !== undefined) {
    outbound.push(
      join(`--match mac ! --mac-source ${input.endpoint.mac}`, comment(INCORRECT_SOURCE_MAC_COMMENT), '--jump DROP'),
    );
  }
  const nets = family === 4 ? input.endpoint.ipv4_nets : input.endpoint.ipv6_nets;
  for (const net of nets) outbound.push(`--source ${memberForm(net)} --jump MARK --set-mark ${mark}/${mark}`);
  outbound.push(join(`--match mark --mark 0/${mark}`, comment(INCORRECT_SOURCE_IP_COMMENT), '--jump DROP'));
  outbound.push(clearMark);
  outbound.push(...profileJumps(input, 'outbound', mark, hasProfile));

  const inbound: string[] = [clearMark, ...profileJumps(input, 'inbound', mark, hasProfile)];
  return { inbound: buildChain(inboundName, inbound), outbound: buildChain(outboundName, outbound) };
}
