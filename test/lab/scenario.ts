/**
 * The WEB/APP worked example of the "Advanced Network Policy" seed (002/004), as data: the
 * workloads, the calicoctl commands of each step, and the connections each step must allow
 * (`true`) or deny (`false`), checked with real packets. The e2e test asserts the results; the
 * demo prints them as a ✓/✗ matrix. `runStep` measures how long after each command the agents
 * reported its etcd revision applied (enforcement latency).
 *
 * Workloads: web1 (hostA, dual-stack) and web2 (hostB, dual-stack) in WEB; app1 (hostA, IPv4)
 * and app2 (hostB, dual-stack) in APP. Every check that crosses hosts goes over the fabric.
 */
import type { Family, HostId, Lab, LabWorkload } from './lab.js';

export interface WorkloadSpec {
  name: string;
  host: HostId;
  profile: string;
  dualStack: boolean;
  /** TCP ports `nc -lk` listens on inside the workload. */
  ports: number[];
}

export const WORKLOADS: readonly WorkloadSpec[] = [
  { name: 'web1', host: 'A', profile: 'WEB', dualStack: true, ports: [22, 80, 443, 8080] },
  { name: 'web2', host: 'B', profile: 'WEB', dualStack: true, ports: [22, 80, 443, 8080] },
  { name: 'app1', host: 'A', profile: 'APP', dualStack: false, ports: [22, 7890] },
  { name: 'app2', host: 'B', profile: 'APP', dualStack: true, ports: [22, 7890] },
];

/** The seed's APP-rules.json, verbatim. */
export const APP_RULES_JSON = `{
  "id": "APP",
  "inbound_rules": [
    {
      "action": "allow",
      "protocol": "tcp",
      "dst_ports": [7890],
      "src_tag": "APP_7890"
    },
    {
      "action": "allow",
      "protocol": "icmp",
      "icmp_type": 8
    }
  ],
  "outbound_rules": [
    {
      "action": "allow"
    }
  ]
}
`;

export interface Check {
  from: string;
  to: string;
  /** `ping` = one ICMP echo; a number = TCP connect to that port. */
  probe: 'ping' | number;
  family: Family;
  allowed: boolean;
}

export interface Command {
  args: string[];
  /** stdin (e.g. `rule update < APP-rules.json`). */
  input?: string;
  /** How the command reads in the walkthrough, when it differs from `calicoctl <args>`. */
  display?: string;
}

export interface Step {
  title: string;
  commands: Command[];
  checks: Check[];
}

const tcp = (from: string, to: string, port: number, allowed: boolean, family: Family = 4): Check => ({
  from,
  to,
  probe: port,
  family,
  allowed,
});
const ping = (from: string, to: string, allowed: boolean, family: Family = 4): Check => ({ from, to, probe: 'ping', family, allowed });

/** Commands that create the profiles (run before the workloads are attached). */
export const PROFILE_SETUP: readonly Command[] = [{ args: ['profile', 'add', 'WEB'] }, { args: ['profile', 'add', 'APP'] }];

export const STEPS: readonly Step[] = [
  {
    title: '1. Default profiles: only endpoints with the same profile may talk',
    commands: [],
    checks: [
      ping('web1', 'web2', true),
      tcp('web1', 'web2', 22, true),
      tcp('web2', 'web1', 8080, true),
      tcp('web1', 'web2', 8080, true, 6),
      ping('web2', 'web1', true, 6),
      tcp('app1', 'app2', 7890, true),
      tcp('app2', 'app1', 22, true),
      tcp('web1', 'app2', 7890, false),
      ping('web1', 'app1', false),
      tcp('app1', 'web2', 80, false),
      ping('app2', 'web1', false),
      tcp('app2', 'web1', 80, false, 6),
    ],
  },
  {
    title: '2. WEB becomes a public web server: TCP 80/443 and ping from anywhere, nothing else',
    commands: [
      { args: ['profile', 'WEB', 'rule', 'remove', 'inbound', '--at=1'] },
      { args: ['profile', 'WEB', 'rule', 'add', 'inbound', 'allow', 'tcp', 'to', 'ports', '80,443'] },
      { args: ['profile', 'WEB', 'rule', 'add', 'inbound', 'allow', 'icmp', 'type', '8'] },
    ],
    checks: [
      tcp('app1', 'web2', 80, true),
      tcp('app1', 'web2', 443, true),
      ping('app1', 'web2', true),
      tcp('app1', 'web2', 22, false),
      tcp('app1', 'web2', 8080, false),
      tcp('web1', 'web2', 80, true),
      tcp('web1', 'web2', 22, false),
      tcp('web2', 'web1', 8080, false),
      tcp('app2', 'web1', 443, true, 6),
      tcp('app2', 'web1', 22, false, 6),
      ping('app2', 'web1', false, 6),
      tcp('web1', 'app2', 7890, false),
    ],
  },
  {
    title: '3. APP rules from JSON: port 7890 only from tag APP_7890; WEB gets the tag, then loses it',
    commands: [{ args: ['profile', 'APP', 'rule', 'update'], input: APP_RULES_JSON, display: 'calicoctl profile APP rule update < APP-rules.json' }],
    checks: [
      tcp('web1', 'app2', 7890, false),
      tcp('app1', 'app2', 7890, false),
      ping('web1', 'app2', true),
      ping('web2', 'app1', true),
      tcp('web2', 'app1', 22, false),
    ],
  },
  {
    title: '3b. profile WEB tag add APP_7890: WEB endpoints may reach APP on 7890 (via the tag ipset)',
    commands: [{ args: ['profile', 'WEB', 'tag', 'add', 'APP_7890'] }],
    checks: [
      tcp('web1', 'app2', 7890, true),
      tcp('web2', 'app1', 7890, true),
      tcp('web1', 'app2', 7890, true, 6),
      tcp('app1', 'app2', 7890, false),
      tcp('web1', 'app2', 22, false),
    ],
  },
  {
    title: '3c. profile WEB tag remove APP_7890: access revoked',
    commands: [{ args: ['profile', 'WEB', 'tag', 'remove', 'APP_7890'] }],
    checks: [
      tcp('web1', 'app2', 7890, false),
      tcp('web2', 'app1', 7890, false),
      tcp('web1', 'app2', 7890, false, 6),
      ping('web1', 'app2', true),
    ],
  },
  {
    title: '4. IPv6: an icmpv6 rule lets ping -6 reach WEB (ICMP type 8 is IPv4 only)',
    commands: [{ args: ['profile', 'WEB', 'rule', 'add', 'inbound', 'allow', 'icmpv6', 'type', '128'] }],
    checks: [
      ping('app2', 'web1', true, 6),
      ping('web2', 'web1', true, 6),
      ping('web1', 'app2', false, 6),
      tcp('app2', 'web1', 80, true, 6),
      tcp('app2', 'web1', 8080, false, 6),
    ],
  },
];

export interface CheckResult extends Check {
  observed: boolean;
}

export interface CommandResult {
  display: string;
  /** Per host: ms from the write's etcd commit until the agent's /status showed it applied. */
  enforcedMs: Record<string, number>;
  calicoctlMs: number;
}

export interface StepResult {
  step: Step;
  commands: CommandResult[];
  checks: CheckResult[];
}

export function displayCommand(command: Command): string {
  return command.display ?? `calicoctl ${command.args.join(' ')}`;
}

/** Runs one calicoctl command and waits for both agents to apply it. */
export async function runCommand(lab: Lab, command: Command): Promise<CommandResult> {
  const { result, enforcedMs } = await lab.enforce(command.args, command.input === undefined ? {} : { input: command.input });
  return { display: displayCommand(command), enforcedMs, calicoctlMs: result.ms };
}

/** Creates the profiles and attaches the workloads (with their listeners). */
export async function setUpScenario(lab: Lab, onCommand: (line: string) => void = () => undefined): Promise<Map<string, LabWorkload>> {
  for (const command of PROFILE_SETUP) {
    onCommand(displayCommand(command));
    await runCommand(lab, command);
  }
  const workloads = new Map<string, LabWorkload>();
  for (const spec of WORKLOADS) {
    const workload = await lab.addWorkload({ name: spec.name, host: spec.host, profiles: [spec.profile], dualStack: spec.dualStack });
    const ips = [workload.ipv4, ...(workload.ipv6 ? [workload.ipv6] : [])].map((ip) => `--ip=${ip}`).join(' ');
    onCommand(`calicoctl workload add ${spec.name} --netns=${workload.netns.name} ${ips} --profile=${spec.profile}    # on ${workload.host.hostname}`);
    for (const port of spec.ports) await lab.listen(workload, port);
    workloads.set(spec.name, workload);
  }
  return workloads;
}

/** Probes every check of a step in parallel (the lab serialises probes per listener). */
export async function probe(lab: Lab, workloads: ReadonlyMap<string, LabWorkload>, checks: readonly Check[]): Promise<CheckResult[]> {
  const get = (name: string): LabWorkload => {
    const workload = workloads.get(name);
    if (!workload) throw new Error(`scenario: unknown workload ${name}`);
    return workload;
  };
  return Promise.all(
    checks.map(async (check) => {
      const from = get(check.from);
      const to = get(check.to);
      const observed =
        check.probe === 'ping' ? await lab.ping(from, to, check.family) : await lab.tcp(from, to, check.probe, check.family);
      return { ...check, observed };
    }),
  );
}

/** Called around each command of a step (the demo prints them). */
export interface StepHooks {
  before?(display: string): void;
  after?(result: CommandResult): void;
}

/** Runs a step's commands (waiting for enforcement after each), then its checks. */
export async function runStep(
  lab: Lab,
  workloads: ReadonlyMap<string, LabWorkload>,
  step: Step,
  hooks: StepHooks = {},
): Promise<StepResult> {
  const commands: CommandResult[] = [];
  for (const command of step.commands) {
    hooks.before?.(displayCommand(command));
    const result = await runCommand(lab, command);
    hooks.after?.(result);
    commands.push(result);
  }
  return { step, commands, checks: await probe(lab, workloads, step.checks) };
}

export function describeCheck(check: Check): string {
  const what = check.probe === 'ping' ? `ping${check.family === 6 ? ' -6' : ''}` : `tcp${check.family === 6 ? '6' : ''}/${check.probe}`;
  return `${check.from} → ${check.to} ${what}`;
}
