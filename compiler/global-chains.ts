/**
 * Global chains and the hooks that send kernel traffic into them (Felix §3.1–3.3, 1.4 conntrack):
 *
 *   filter INPUT   -j cali-INPUT    workload → host: ND (v6), conntrack, DHCP, DNS, failsafe
 *                                   ports, then endpointToHostAction (DROP, or the workload's
 *                                   outbound policy followed by ACCEPT / RETURN)
 *   filter FORWARD -j cali-FORWARD  conntrack, then sender's outbound policy (from-wl dispatch)
 *                                   and receiver's inbound policy (to-wl dispatch), then ACCEPT;
 *                                   traffic not touching a workload interface is untouched
 *   filter OUTPUT  -j cali-OUTPUT   host → workload: ND (v6), conntrack, failsafe ports, then the
 *                                   workload's inbound policy. Stricter than Felix Go, which
 *                                   exempts host → workload traffic from policy.
 *   raw PREROUTING -j cali-PREROUTING (IPv6 only): `rpfilter --invert` DROP on workload
 *                                   interfaces (IPv6 anti-spoofing, §3.7)
 *
 * Invariant: ND (ICMPv6 130-133, 135, 136; router adverts 134 only host → host) is accepted
 * before the conntrack INVALID drop, so neighbour discovery is never dropped as INVALID.
 */
import type { IpVersion } from '../src/model/index.js';
import { buildChain, buildHook, comment, join } from './chain.js';
import {
  FORWARD_CHAIN,
  FROM_WORKLOAD_DISPATCH,
  INPUT_CHAIN,
  OUTPUT_CHAIN,
  PREROUTING_CHAIN,
  TO_WORKLOAD_DISPATCH,
} from './names.js';
import type { ChainSpec, CompilerConfig, HookSpec, PortSpec, TableName } from './types.js';

/** MLD query/report/done, router solicitation, neighbour solicitation/advertisement. */
const ND_TYPES = [130, 131, 132, 133, 135, 136];

const INVALID_DROP = '--match conntrack --ctstate INVALID --jump DROP';
const ESTABLISHED_ACCEPT = '--match conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT';

function ndAccepts(types: readonly number[]): string[] {
  return types.map((type) => `--protocol icmpv6 --match icmp6 --icmpv6-type ${type} --jump ACCEPT`);
}

function failsafeAccepts(ports: readonly PortSpec[]): string[] {
  return ports.map(
    ({ protocol, port }) => `--protocol ${protocol} --match ${protocol} --destination-port ${port} --jump ACCEPT`,
  );
}

export interface GlobalChains {
  chains: Record<TableName, ChainSpec[]>;
  hooks: Record<TableName, HookSpec[]>;
}

export function renderGlobalChains(config: CompilerConfig, family: IpVersion): GlobalChains {
  const workloads = `${config.interfacePrefix}+`;

  const forward = [
    `--in-interface ${workloads} ${INVALID_DROP}`,
    `--out-interface ${workloads} ${INVALID_DROP}`,
    `--in-interface ${workloads} ${ESTABLISHED_ACCEPT}`,
    `--out-interface ${workloads} ${ESTABLISHED_ACCEPT}`,
    `--in-interface ${workloads} --jump ${FROM_WORKLOAD_DISPATCH}`,
    `--out-interface ${workloads} --jump ${TO_WORKLOAD_DISPATCH}`,
    `--in-interface ${workloads} --jump ACCEPT`,
    `--out-interface ${workloads} --jump ACCEPT`,
  ];

  const input = [`! --in-interface ${workloads} --jump RETURN`];
  if (family === 6) input.push(...ndAccepts(ND_TYPES));
  input.push(INVALID_DROP, ESTABLISHED_ACCEPT);
  input.push(
    family === 4
      ? '--protocol udp --match udp --source-port 68 --destination-port 67 --jump ACCEPT'
      : '--protocol udp --match udp --source-port 546 --destination-port 547 --jump ACCEPT',
  );
  input.push('--protocol udp --match udp --destination-port 53 --jump ACCEPT');
  input.push(...failsafeAccepts(config.failsafeInboundHostPorts));
  switch (config.endpointToHostAction) {
    case 'DROP':
      input.push(join(comment('Drop all packets from workloads to the host'), '--jump DROP'));
      break;
    case 'ACCEPT':
      input.push(`--jump ${FROM_WORKLOAD_DISPATCH}`, '--jump ACCEPT');
      break;
    case 'RETURN':
      input.push(`--jump ${FROM_WORKLOAD_DISPATCH}`);
      break;
  }

  const output = [`! --out-interface ${workloads} --jump RETURN`];
  if (family === 6) output.push(...ndAccepts(ND_TYPES));
  output.push(INVALID_DROP, ESTABLISHED_ACCEPT);
  output.push(...failsafeAccepts(config.failsafeOutboundHostPorts));
  output.push(`--jump ${TO_WORKLOAD_DISPATCH}`, '--jump ACCEPT');

  const filterChains = [
    buildChain(INPUT_CHAIN, input),
    buildChain(FORWARD_CHAIN, forward),
    buildChain(OUTPUT_CHAIN, output),
  ];
  const filterHooks = [
    buildHook('INPUT', `--jump ${INPUT_CHAIN}`),
    buildHook('FORWARD', `--jump ${FORWARD_CHAIN}`),
    buildHook('OUTPUT', `--jump ${OUTPUT_CHAIN}`),
  ];
  if (family === 4) return { chains: { filter: filterChains, raw: [] }, hooks: { filter: filterHooks, raw: [] } };

  const prerouting = buildChain(PREROUTING_CHAIN, [
    join(`--in-interface ${workloads} --match rpfilter --invert`, comment('IPv6 source address check (rpfilter) failed'), '--jump DROP'),
  ]);
  return {
    chains: { filter: filterChains, raw: [prerouting] },
    hooks: { filter: filterHooks, raw: [buildHook('PREROUTING', `--jump ${PREROUTING_CHAIN}`)] },
  };
}
