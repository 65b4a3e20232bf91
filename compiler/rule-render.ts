/**
 * One profile rule → iptables match fragments for one IP family (Felix 1.3 §3.8 with the 1.4
 * negation rules). Pure and table-tested (test/compiler/rule-render.test.ts).
 *
 * Order of criteria in a fragment (positive pass, then the `!` pass):
 *   --protocol p | --source n | --match set --match-set <src set> src | --match multiport --source-ports
 *   | --destination … dst … --destination-ports | --match icmp[6] --icmp[v6]-type t[/c]
 *   ! --protocol p | ! --source n | --match set ! --match-set … src | --match multiport ! --source-ports
 *   (every chunk, ANDed) | ! --destination … | --match icmp[6] ! --icmp[v6]-type t[/c]
 *
 * Invariants:
 * - a rule whose IP version (ruleIpVersion) is the other family yields no fragment: it is skipped,
 *   never widened (Appendix B.1);
 * - positive port lists are chunked to ≤ 15 multiport entries (a range counts 2) and the rule is
 *   repeated for each (src chunk × dst chunk), src-major; negated chunks all go in one fragment;
 * - an empty port list is no constraint; a rule with no criteria renders as the empty match.
 */
import { protocolName, ruleIpVersion, type IpVersion, type Port, type Rule } from '../src/model/index.js';
import { join } from './chain.js';

export const MAX_MULTIPORT_ENTRIES = 15;

/** Splits a port list into multiport-sized chunks (Felix `_split_port_lists`). */
export function splitPortList(ports: readonly Port[]): string[][] {
  const chunks: string[][] = [];
  let chunk: string[] = [];
  let weight = 0;
  for (const port of ports) {
    const text = String(port);
    const cost = text.includes(':') ? 2 : 1;
    if (weight + cost > MAX_MULTIPORT_ENTRIES) {
      chunks.push(chunk);
      chunk = [];
      weight = 0;
    }
    chunk.push(text);
    weight += cost;
  }
  chunks.push(chunk);
  return chunks;
}

function positivePortChunks(ports: readonly Port[] | undefined): string[][] {
  return ports === undefined || ports.length === 0 ? [[]] : splitPortList(ports);
}

function icmpMatch(rule: Rule, negated: boolean): string {
  const type = negated ? rule['!icmp_type'] : rule.icmp_type;
  if (type === undefined) return '';
  const code = negated ? rule['!icmp_code'] : rule.icmp_code;
  const value = code === undefined ? `${type}` : `${type}/${code}`;
  const bang = negated ? '! ' : '';
  const protocol = rule.protocol === undefined ? undefined : protocolName(rule.protocol);
  return protocol === 'icmpv6'
    ? `--match icmp6 ${bang}--icmpv6-type ${value}`
    : `--match icmp ${bang}--icmp-type ${value}`;
}

/** Maps a tag to the name of its ipset in the family being rendered. */
export type TagSetNamer = (tag: string) => string;

/**
 * The match fragments of `rule` in `family` (empty array: rule skipped for this family). Each
 * fragment is the rule's full match; the caller appends the action.
 */
export function ruleMatchFragments(rule: Rule, family: IpVersion, tagSet: TagSetNamer): string[] {
  const version = ruleIpVersion(rule);
  if (version !== undefined && version !== family) return [];

  const setMatch = (tag: string | undefined, dir: 'src' | 'dst', negated: boolean): string =>
    tag === undefined ? '' : `--match set ${negated ? '! ' : ''}--match-set ${tagSet(tag)} ${dir}`;
  const negatedPorts = (ports: readonly Port[] | undefined, option: string): string =>
    ports === undefined || ports.length === 0
      ? ''
      : splitPortList(ports)
          .map((chunk) => `--match multiport ! ${option} ${chunk.join(',')}`)
          .join(' ');

  const negatedPart = join(
    rule['!protocol'] === undefined ? '' : `! --protocol ${rule['!protocol']}`,
    rule['!src_net'] === undefined ? '' : `! --source ${rule['!src_net']}`,
    setMatch(rule['!src_tag'], 'src', true),
    negatedPorts(rule['!src_ports'], '--source-ports'),
    rule['!dst_net'] === undefined ? '' : `! --destination ${rule['!dst_net']}`,
    setMatch(rule['!dst_tag'], 'dst', true),
    negatedPorts(rule['!dst_ports'], '--destination-ports'),
    icmpMatch(rule, true),
  );

  const fragments: string[] = [];
  for (const srcChunk of positivePortChunks(rule.src_ports)) {
    for (const dstChunk of positivePortChunks(rule.dst_ports)) {
      fragments.push(
        join(
          rule.protocol === undefined ? '' : `--protocol ${rule.protocol}`,
          rule.src_net === undefined ? '' : `--source ${rule.src_net}`,
          setMatch(rule.src_tag, 'src', false),
          srcChunk.length === 0 ? '' : `--match multiport --source-ports ${srcChunk.join(',')}`,
          rule.dst_net === undefined ? '' : `--destination ${rule.dst_net}`,
          setMatch(rule.dst_tag, 'dst', false),
          dstChunk.length === 0 ? '' : `--match multiport --destination-ports ${dstChunk.join(',')}`,
          icmpMatch(rule, false),
          negatedPart,
        ),
      );
    }
  }
  return fragments;
}

/** Tags a rule references (positively or negated). */
export function ruleTags(rule: Rule): string[] {
  const tags: string[] = [];
  for (const tag of [rule.src_tag, rule.dst_tag, rule['!src_tag'], rule['!dst_tag']]) {
    if (tag !== undefined) tags.push(tag);
  }
  return tags;
}

/** Profile rule bodies: the match followed by the action (allow → RETURN, deny → DROP). */
export function profileRuleBodies(rule: Rule, family: IpVersion, tagSet: TagSetNamer): string[] {
  const target = rule.action === 'deny' ? '--jump DROP' : '--jump RETURN';
  return ruleMatchFragments(rule, family, tagSet).map((match) => join(match, target));
}
