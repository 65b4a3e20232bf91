/**
 * Dispatch chains: `cali-from-wl-dispatch` (by input interface → `cali-fw-<iface>`) and
 * `cali-to-wl-dispatch` (by output interface → `cali-tw-<iface>`), Felix §3.4.
 *
 * Invariants:
 * - rules use `--goto`, so an endpoint chain's RETURN goes back to the global chain that jumped
 *   into dispatch (cali-FORWARD / cali-INPUT / cali-OUTPUT);
 * - every dispatch chain ends with DROP "Unknown interface": a prefixed interface without a
 *   local endpoint is dropped;
 * - order is sorted by interface name, so output depends only on the set of interfaces;
 * - a level with more than DISPATCH_LEAF_SIZE interfaces is split by the next character after
 *   the workload prefix into sub-chains `<root>-<chars>` (≤ 28 characters), so a packet walks a
 *   few dozen rules rather than one per endpoint on large hosts.
 */
import { buildChain, comment, join } from './chain.js';
import {
  dispatchChildName,
  endpointChainName,
  FROM_WORKLOAD_DISPATCH,
  MAX_DISPATCH_CHARS,
  TO_WORKLOAD_DISPATCH,
  type Direction,
} from './names.js';
import type { ChainSpec } from './types.js';

export const DISPATCH_LEAF_SIZE = 16;

function dispatchTree(
  root: string,
  interfaceOption: '--in-interface' | '--out-interface',
  direction: Direction,
  sortedIfaces: readonly string[],
  prefix: string,
): ChainSpec[] {
  const chains: ChainSpec[] = [];
  const toEndpoint = (iface: string): string =>
    `${interfaceOption} ${iface} --goto ${endpointChainName(iface, direction)}`;

  const level = (chainName: string, members: readonly string[], depth: number): void => {
    const bodies: string[] = [];
    if (members.length <= DISPATCH_LEAF_SIZE || depth >= MAX_DISPATCH_CHARS) {
      bodies.push(...members.map(toEndpoint));
    } else {
      const cut = prefix.length + depth + 1;
      const groups = new Map<string, string[]>();
      for (const iface of members) {
        if (iface.length < cut) {
          bodies.push(toEndpoint(iface));
          continue;
        }
        const key = iface.slice(prefix.length, cut);
        const group = groups.get(key);
        if (group) group.push(iface);
        else groups.set(key, [iface]);
      }
      for (const [key, group] of [...groups].sort(([a], [b]) => (a < b ? -1 : 1))) {
        if (group.length === 1) {
          bodies.push(toEndpoint(group[0]!));
          continue;
        }
        const child = dispatchChildName(root, key);
        bodies.push(`${interfaceOption} ${prefix}${key}+ --goto ${child}`);
        level(child, group, depth + 1);
      }
    }
    bodies.push(join(comment('Unknown interface'), '--jump DROP'));
    chains.push(buildChain(chainName, bodies));
  };

  level(root, sortedIfaces, 0);
  return chains;
}

/** Both dispatch trees for the local endpoint interfaces (sorted, unique, all with `prefix`). */
export function renderDispatchChains(sortedIfaces: readonly string[], prefix: string): ChainSpec[] {
  return [
    ...dispatchTree(FROM_WORKLOAD_DISPATCH, '--in-interface', 'outbound', sortedIfaces, prefix),
    ...dispatchTree(TO_WORKLOAD_DISPATCH, '--out-interface', 'inbound', sortedIfaces, prefix),
  ];
}
