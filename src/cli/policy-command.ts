/**
 * `calicoctl policy trace`: which rule decides a packet between two parties, found by compiling
 * the hosts involved with the agent's own compiler and walking the packet through the chains and
 * sets it would program (compiler/trace.ts). Reads every profile and endpoint at one etcd
 * revision, so the answer is the policy as of that revision (a host's agent may still lag:
 * `calicoctl status` shows by how much).
 *
 * Exit 0 for either verdict; bad input is one line and exit 1 (CliError).
 */
import {
  defaultCompilerConfig,
  partyOf,
  protocolNumber,
  resolveParty,
  traceFamily,
  TraceInputError,
  tracePacket,
  type ClusterSnapshot,
  type SideTrace,
  type TracedPacket,
  type TraceParty,
  type TraceResult,
} from '../../compiler/index.js';
import { protocolName as nameOfProtocol } from '../model/index.js';
import { CliError, splitOptions, UsageError, type CliContext } from './cli-context.js';
import { prettyRule } from './rule-text.js';

export const POLICY_USAGE = [
  'Usage:',
  '  calicoctl policy trace --from=<SRC> --to=<DST> [--protocol=<PROTOCOL>] [--port=<PORT>]',
  '                         [--source-port=<PORT>] [--icmp-type=<TYPE> [--icmp-code=<CODE>]]',
  '                         [-o <FORMAT> | --output=<FORMAT>]',
  '',
  'Description:',
  '  Show which profile rule decides a new connection from SRC to DST: the outbound',
  '  policy of the source endpoint, then the inbound policy of the destination',
  '  endpoint, as the agents of their hosts enforce it. SRC and DST are each an',
  '  endpoint id, a workload id, or an IP address (an address of no endpoint is',
  '  outside the cluster; only the endpoint side is then traced). Ends with',
  '  "verdict: allow" or "verdict: deny"; exit status 0 for either.',
  '',
  'Options:',
  '  --protocol=<PROTOCOL>  tcp, udp, icmp or icmpv6; without it, a protocol no rule names.',
  '  --port=<PORT>          Destination port (required with tcp and udp).',
  '  --source-port=<PORT>   Source port (default 32768).',
  '  --icmp-type=<TYPE>     ICMP type (default 8, echo request; 128 for icmpv6).',
  '  --icmp-code=<CODE>     ICMP code (default 0).',
  '  --interface-prefix=<PREFIX>  The agents\' workload interface prefix (default',
  '                         CALICO_AGENT_INTERFACE_PREFIX, else cali).',
  '  -o, --output=<FORMAT>  text (default) or json.',
].join('\n');

const DEFAULT_SOURCE_PORT = 32768;
const PROTOCOLS = ['tcp', 'udp', 'icmp', 'icmpv6'];

function integerOption(values: Map<string, string>, name: string, max: number): number | undefined {
  const text = values.get(name);
  if (text === undefined) return undefined;
  if (!/^\d{1,5}$/.test(text) || Number(text) > max) throw new CliError(`${name}: expected an integer from 0 to ${max}, got ${JSON.stringify(text)}`);
  return Number(text);
}

/** The packet fields the options give (addresses are filled in once the parties are known). */
function packetOptions(values: Map<string, string>): Omit<TracedPacket, 'family' | 'source' | 'destination'> & { protocolName?: string } {
  const protocolName = values.get('--protocol');
  if (protocolName !== undefined && !PROTOCOLS.includes(protocolName)) {
    throw new CliError(`--protocol: expected one of ${PROTOCOLS.join(', ')}, got ${JSON.stringify(protocolName)}`);
  }
  const port = integerOption(values, '--port', 65535);
  const sourcePort = integerOption(values, '--source-port', 65535);
  const icmpType = integerOption(values, '--icmp-type', 255);
  const icmpCode = integerOption(values, '--icmp-code', 255);
  const ported = protocolName === 'tcp' || protocolName === 'udp';
  const icmp = protocolName === 'icmp' || protocolName === 'icmpv6';
  if ((port !== undefined || sourcePort !== undefined) && !ported) throw new CliError('--port and --source-port need --protocol tcp or udp');
  if (ported && port === undefined) throw new CliError(`--protocol ${protocolName} needs --port`);
  if ((icmpType !== undefined || icmpCode !== undefined) && !icmp) throw new CliError('--icmp-type and --icmp-code need --protocol icmp or icmpv6');
  if (icmpCode !== undefined && icmpType === undefined) throw new CliError('--icmp-code needs --icmp-type');
  const protocol = protocolName === undefined ? undefined : protocolNumber(protocolName);
  if (ported) return { protocolName, protocol, sourcePort: sourcePort ?? DEFAULT_SOURCE_PORT, destinationPort: port! };
  if (icmp) return { protocolName, protocol, icmpType: icmpType ?? (protocolName === 'icmp' ? 8 : 128), icmpCode: icmpCode ?? 0 };
  return { protocol: undefined };
}

export async function runPolicy(args: string[], ctx: CliContext): Promise<void> {
  const [subcommand, ...rest] = args;
  if (subcommand === '--help' || subcommand === '-h') {
    ctx.out(`${POLICY_USAGE}\n`);
    return;
  }
  if (subcommand !== 'trace') throw new UsageError(POLICY_USAGE);
  const options = splitOptions(
    rest,
    { flags: ['--help', '-h'], valued: ['--from', '--to', '--protocol', '--port', '--source-port', '--icmp-type', '--icmp-code', '--interface-prefix', '-o', '--output'] },
    POLICY_USAGE,
  );
  if (options.flags.has('--help') || options.flags.has('-h')) {
    ctx.out(`${POLICY_USAGE}\n`);
    return;
  }
  const format = options.values.get('-o') ?? options.values.get('--output') ?? 'text';
  const from = options.values.get('--from');
  const to = options.values.get('--to');
  if (options.positionals.length > 0 || from === undefined || to === undefined || (format !== 'text' && format !== 'json')) {
    throw new UsageError(POLICY_USAGE);
  }
  const { protocolName, ...fields } = packetOptions(options.values);
  const interfacePrefix = options.values.get('--interface-prefix') ?? (ctx.env.CALICO_AGENT_INTERFACE_PREFIX?.trim() || defaultCompilerConfig().interfacePrefix);
  if (!/^[a-zA-Z0-9_-]{1,10}$/.test(interfacePrefix)) throw new CliError(`--interface-prefix: expected 1-10 characters of [a-zA-Z0-9_-], got ${JSON.stringify(interfacePrefix)}`);

  const contents = await ctx.store().readPolicy();
  const cluster: ClusterSnapshot = { profiles: contents.profiles, endpoints: contents.endpoints, config: { ...defaultCompilerConfig(), interfacePrefix } };
  let result: TraceResult;
  let parties: [TraceParty, TraceParty];
  try {
    const source = resolveParty(cluster, from, 'source');
    const destination = resolveParty(cluster, to, 'destination');
    const family = traceFamily(source, destination, fields.protocol);
    if ((protocolName === 'icmp' && family === 6) || (protocolName === 'icmpv6' && family === 4)) {
      throw new TraceInputError(`--protocol ${protocolName} does not exist in IPv${family}`);
    }
    parties = [partyOf(source, family, 'source'), partyOf(destination, family, 'destination')];
    result = tracePacket(cluster, parties[0], parties[1], { ...fields, family, source: parties[0].address, destination: parties[1].address });
  } catch (error) {
    if (error instanceof TraceInputError) throw new CliError(error.message);
    throw error;
  }
  const report = traceReport(cluster, parties, result, contents.revision);
  ctx.out(format === 'json' ? `${JSON.stringify(report, null, 2)}\n` : textReport(report));
}

interface ProfileLine {
  profile: string;
  outcome: 'allow' | 'deny' | 'fall-through';
  /** 1-based, as `rule show` numbers rules. */
  rule?: number;
  ruleText?: string;
}

interface SideReport {
  direction: 'outbound' | 'inbound';
  host: string;
  orchestrator: string;
  workload: string;
  endpoint: string;
  interface: string;
  profiles: ProfileLine[];
  decision: 'allow' | 'deny';
  reason: SideTrace['reason'];
  explanation: string;
}

interface TraceReport {
  revision: number;
  packet: { family: 4 | 6; protocol: string | null; source: string; destination: string; sourcePort?: number; destinationPort?: number; icmpType?: number; icmpCode?: number };
  source: { address: string; endpoint: string | null };
  destination: { address: string; endpoint: string | null };
  sides: SideReport[];
  verdict: 'allow' | 'deny';
  reason: string;
}

function sideReport(cluster: ClusterSnapshot, side: SideTrace): SideReport {
  const { ref, endpoint } = side.endpoint;
  const profiles: ProfileLine[] = side.profiles.map((visit) => {
    const rules = cluster.profiles.get(visit.profile)?.rules;
    const list = side.direction === 'inbound' ? rules?.inbound_rules : rules?.outbound_rules;
    const rule = visit.rule === undefined ? undefined : list?.[visit.rule];
    return { profile: visit.profile, outcome: visit.outcome, ...(visit.rule !== undefined ? { rule: visit.rule + 1 } : {}), ...(rule !== undefined ? { ruleText: prettyRule(rule) } : {}) };
  });
  const decided = profiles.at(-1);
  const missing = endpoint.profile_ids.find((id) => cluster.profiles.get(id)?.rules === undefined);
  const explanation = ((): string => {
    switch (side.reason) {
      case 'rule':
        return decided && decided.outcome !== 'fall-through' ? `rule ${decided.rule} of profile ${decided.profile}` : 'no rule decided';
      case 'missing-profile':
        return `profile ${missing ?? '?'} is missing or invalid (fail closed)`;
      case 'inactive-endpoint':
        return 'the endpoint is inactive';
      case 'anti-spoofing':
        return "anti-spoofing: the source is not the endpoint's own address or MAC";
      case 'default-deny':
        return 'no profile allowed it (default deny)';
      case 'unknown-interface':
        return `interface ${endpoint.name} is not among host ${ref.host}'s active workloads (unknown interface)`;
      case 'unpoliced':
        return `interface ${endpoint.name} does not carry the workload prefix: the agent does not police it`;
    }
  })();
  return {
    direction: side.direction,
    host: ref.host,
    orchestrator: ref.orchestrator,
    workload: ref.workload,
    endpoint: ref.endpointId,
    interface: endpoint.name,
    profiles,
    decision: side.decision,
    reason: side.reason,
    explanation,
  };
}

function traceReport(cluster: ClusterSnapshot, parties: [TraceParty, TraceParty], result: TraceResult, revision: number): TraceReport {
  const { packet } = result;
  const sides = result.sides.map((side) => sideReport(cluster, side));
  const denied = sides.find((side) => side.decision === 'deny');
  const at = (side: SideReport): string => `${side.direction} at endpoint ${side.endpoint}`;
  const reason = denied ? `${denied.explanation}, ${at(denied)}` : sides.map((side) => `${side.explanation}, ${at(side)}`).join('; ');
  const party = (p: TraceParty) => ({ address: p.address, endpoint: p.kind === 'endpoint' ? p.input.ref.endpointId : null });
  const protocol = packet.protocol === undefined ? null : nameOfProtocol(String(packet.protocol));
  return {
    revision,
    packet: { ...packet, protocol },
    source: party(parties[0]),
    destination: party(parties[1]),
    sides,
    verdict: result.verdict,
    reason,
  };
}

function textReport(report: TraceReport): string {
  const { packet } = report;
  const lines: string[] = [];
  const port = (address: string, p?: number): string => (p === undefined ? address : packet.family === 6 ? `[${address}]:${p}` : `${address}:${p}`);
  const icmp = packet.icmpType === undefined ? '' : ` type ${packet.icmpType} code ${packet.icmpCode}`;
  lines.push(
    `packet: ${packet.protocol ?? 'other protocol'}${icmp} ${port(packet.source, packet.sourcePort)} -> ${port(packet.destination, packet.destinationPort)} (IPv${packet.family}, new connection, etcd revision ${report.revision})`,
  );
  if (report.source.endpoint === null) lines.push(`source ${report.source.address} is outside the cluster: no outbound policy applies`);
  for (const side of report.sides) {
    const role = side.direction === 'outbound' ? 'source' : 'destination';
    lines.push(`${side.direction} at ${role} endpoint ${side.endpoint} (host ${side.host}, workload ${side.workload}, interface ${side.interface}):`);
    for (const line of side.profiles) {
      lines.push(
        line.outcome === 'fall-through'
          ? `  profile ${line.profile}: no rule matched, falls through`
          : `  profile ${line.profile}: rule ${line.rule} matched: ${line.ruleText} -> ${line.outcome}`,
      );
    }
    lines.push(`  decision: ${side.decision} (${side.explanation})`);
  }
  if (report.destination.endpoint === null) lines.push(`destination ${report.destination.address} is outside the cluster: no inbound policy applies`);
  lines.push(`verdict: ${report.verdict} (${report.reason})`);
  return `${lines.join('\n')}\n`;
}
