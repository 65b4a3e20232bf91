/**
 * Profile chains `cali-pri-<id>` (inbound rules) and `cali-pro-<id>` (outbound rules), Felix 1.3
 * mark scheme (§3.6): the chain first sets the accept mark, an allow rule RETURNs (mark set), a
 * deny rule DROPs, and a packet that matches nothing clears the mark and falls through to the
 * endpoint chain's next profile.
 *
 * Invariant: only rules of the chain's IP family (or of both) are rendered; the ipsets a chain
 * references are reported with it so the compiler creates exactly those sets.
 */
import type { IpVersion, Rule } from '../src/model/index.js';
import { buildChain, comment, hex, join } from './chain.js';
import { profileChainName, tagIpsetName, type Direction } from './names.js';
import { profileRuleBodies, ruleTags } from './rule-render.js';
import type { ChainSpec } from './types.js';

export const FALL_THROUGH_COMMENT = 'No match, fall through to next profile';

export interface RenderedProfileChain {
  chain: ChainSpec;
  /** Tags referenced by the rules rendered in this family. */
  tags: readonly string[];
  /**
   * Per chain rule, the 0-based position of the profile rule it renders; null for the chain's
   * first rule (sets the mark) and last (falls through). A rule split into several chain rules
   * (port chunks) appears once per chunk; a rule of the other family not at all.
   */
  origins: readonly (number | null)[];
}

export function renderProfileChain(
  profileId: string,
  rules: readonly Rule[],
  direction: Direction,
  family: IpVersion,
  markBit: number,
): RenderedProfileChain {
  const mark = hex(markBit);
  const tagSet = (tag: string): string => tagIpsetName(tag, family);
  const bodies: string[] = [`--jump MARK --set-mark ${mark}/${mark}`];
  const origins: (number | null)[] = [null];
  const tags = new Set<string>();
  rules.forEach((rule, position) => {
    const rendered = profileRuleBodies(rule, family, tagSet);
    for (const body of rendered) {
      bodies.push(body);
      origins.push(position);
    }
    if (rendered.length > 0) for (const tag of ruleTags(rule)) tags.add(tag);
  });
  bodies.push(join(comment(FALL_THROUGH_COMMENT), `--jump MARK --set-mark 0/${mark}`));
  origins.push(null);
  return { chain: buildChain(profileChainName(profileId, direction), bodies), tags: [...tags].sort(), origins };
}
