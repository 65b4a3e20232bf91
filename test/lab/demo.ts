/**
 * The live demo (`bash deploy/scripts/demo.sh`, or `node dist/test/lab/demo.js` as root after a
 * build): builds the two-host lab, walks through the seed's WEB/APP example printing every
 * calicoctl command and how long the agents took to enforce it, probes the connections each step
 * must allow or deny with real packets (✓ / ✗), prints a final reachability matrix, and tears
 * everything down — also on Ctrl-C or an error.
 *
 * Exit status: 0 when every connection behaved as the policy says, 1 otherwise (or on error),
 * 130 when interrupted.
 */
import { performance } from 'node:perf_hooks';
import { createLab, type Lab, type LabWorkload } from './lab.js';
import {
  describeCheck,
  probe,
  runStep,
  setUpScenario,
  STEPS,
  WORKLOADS,
  type Check,
  type CommandResult,
} from './scenario.js';

const color = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code: string) => (text: string) => (color ? `\x1b[${code}m${text}\x1b[0m` : text);
const bold = paint('1');
const dim = paint('2');
const green = paint('32');
const red = paint('31');
const cyan = paint('36');

/** Pads to `width` visible columns (colour escapes take none). */
const padVisible = (text: string, width: number): string =>
  text + ' '.repeat(Math.max(0, width - text.replace(/\x1b\[[0-9;]*m/g, '').length));

const say = (text = ''): void => {
  process.stdout.write(`${text}\n`);
};

function enforcement(result: CommandResult): string {
  if (Object.keys(result.enforcedMs).length === 0) return dim('  ↳ nothing changed in etcd');
  const hosts = Object.entries(result.enforcedMs)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([host, ms]) => `${host} ${ms.toFixed(0)} ms`)
    .join(', ');
  return dim(`  ↳ enforced ${hosts} after the etcd write`);
}

function mark(allowed: boolean): string {
  return allowed ? green('✓') : red('✗');
}

async function finalMatrix(lab: Lab, workloads: ReadonlyMap<string, LabWorkload>): Promise<number> {
  const names = [...workloads.keys()];
  const probes: { label: string; probe: Check['probe'] }[] = [
    { label: 'ping', probe: 'ping' },
    { label: '80', probe: 80 },
    { label: '7890', probe: 7890 },
  ];
  const checks: Check[] = [];
  for (const from of names) {
    for (const to of names) {
      if (from === to) continue;
      for (const p of probes) checks.push({ from, to, probe: p.probe, family: 4, allowed: true });
    }
  }
  const results = await probe(lab, workloads, checks);
  const cell = (from: string, to: string): string => {
    if (from === to) return '  -  ';
    return probes
      .map((p) => mark(results.find((r) => r.from === from && r.to === to && r.probe === p.probe)!.observed))
      .join(' ');
  };
  const profileOf = (name: string) => WORKLOADS.find((w) => w.name === name)?.profile ?? '';
  say(bold('Final reachability (IPv4), each cell = ping  tcp/80  tcp/7890:'));
  say(`  ${'from \\ to'.padEnd(12)}${names.map((n) => `${n}(${profileOf(n)})`.padEnd(13)).join('')}`);
  for (const from of names) {
    say(`  ${`${from}(${profileOf(from)})`.padEnd(12)}${names.map((to) => padVisible(cell(from, to), 13)).join('')}`);
  }
  return results.length;
}

async function main(): Promise<number> {
  const started = performance.now();
  say(bold('calico-agent demo: the WEB/APP example of "Advanced Network Policy", with real packets'));
  say(dim('Lab: etcd on 127.0.0.1; hostA and hostB are network namespaces joined by a veth fabric'));
  say(dim('(192.0.2.0/24, 2001:db8:f::/64), each with its own calico-agent; workloads are namespaces'));
  say(dim('attached with calicoctl workload add (hostA: 198.51.100.0/25, 2001:db8:a::/64;'));
  say(dim('hostB: 198.51.100.128/25, 2001:db8:b::/64).'));
  say();

  let lab: Lab | undefined;
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    say(`\n${signal}: tearing the lab down…`);
    void (lab?.teardown() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let failures = 0;
  const latencies: CommandResult[] = [];
  try {
    lab = await createLab({ log: (line) => say(dim(`• ${line}`)) });
    if (interrupted) return 130;
    say(dim(`• lab ready in ${((performance.now() - started) / 1000).toFixed(1)} s`));
    say();
    say(bold('Profiles and workloads'));
    const workloads = await setUpScenario(lab, (line) => say(`${cyan('$')} ${line}`));
    say();

    for (const step of STEPS) {
      say(bold(step.title));
      const result = await runStep(lab, workloads, step, {
        before: (line) => say(`${cyan('$')} ${line}`),
        after: (command) => say(enforcement(command)),
      });
      latencies.push(...result.commands);
      if (step.title.startsWith('2.')) {
        say(`${cyan('$')} calicoctl profile WEB rule show`);
        say((await lab.calicoctl(['profile', 'WEB', 'rule', 'show'])).stdout.replace(/\n$/, '').replace(/^/gm, '  '));
      }
      if (step.title.startsWith('3b.')) {
        say(`${cyan('$')} calicoctl profile WEB tag show`);
        say((await lab.calicoctl(['profile', 'WEB', 'tag', 'show'])).stdout.replace(/\n$/, '').replace(/^/gm, '  '));
      }
      for (const check of result.checks) {
        const ok = check.observed === check.allowed;
        if (!ok) failures++;
        const verdict = check.observed ? 'allowed' : 'denied';
        const note = ok ? '' : red(`   <-- expected ${check.allowed ? 'allowed' : 'denied'}`);
        say(`   ${mark(check.observed)} ${describeCheck(check).padEnd(30)} ${dim(verdict)}${note}`);
      }
      say();
    }

    await finalMatrix(lab, workloads);
    say();
    say(bold('Enforcement latency (etcd write committed → the slower agent reports it applied in /status):'));
    for (const command of latencies) {
      const times = Object.values(command.enforcedMs);
      const worst = times.length === 0 ? '—' : Math.max(...times).toFixed(0);
      say(`  ${worst.padStart(5)} ms  ${command.display}`);
    }
    say();
    say(
      failures === 0
        ? green(bold('Every connection behaved as the policy says.'))
        : red(bold(`${failures} connection(s) did not behave as the policy says.`)),
    );
    return failures === 0 ? 0 : 1;
  } catch (error) {
    if (interrupted) return 130;
    process.stderr.write(`demo failed: ${(error as Error).stack ?? String(error)}\n`);
    return 1;
  } finally {
    if (!interrupted) {
      say(dim('• tearing down the lab (agents, listeners, namespaces, etcd)'));
      await lab?.teardown();
      say(dim(`• done in ${((performance.now() - started) / 1000).toFixed(1)} s`));
    }
  }
}

process.exitCode = await main();
