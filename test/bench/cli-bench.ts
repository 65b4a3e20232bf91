/**
 * calicoctl start-up benchmark (prints figures, asserts nothing): wall time from spawn to exit of
 * the `calicoctl` command as installed (src/cli/launcher.sh, running the bundle dist/calicoctl.cjs)
 * for `--help`, a usage error, `profile show` and `profile <P> rule show`, against a private etcd
 * (plain http) holding a few profiles, beside the same run's floors: `node` on an empty script
 * (the runtime's own start-up, with this environment's NODE_OPTIONS/NODE_EXTRA_CA_CERTS, and again
 * without NODE_EXTRA_CA_CERTS, which the launcher drops for http endpoints), the bundle run by
 * `node` directly (no launcher), and `etcdctl get` of the same rules key. Medians over RUNS
 * (default 21) interleaved runs. Targets (issue 8): a read ≤ 150 ms median and ≤ 3 × etcdctl.
 *
 * Run: npm run bench:cli
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEtcd } from '../helpers/etcd.js';
import { CALICOCTL, REPO_ROOT } from '../lab/lab.js';

const RUNS = Math.max(3, Number(process.env.RUNS ?? 21));
const CLI = CALICOCTL;
/** The command on PATH (package.json `bin`). */
const COMMAND = join(REPO_ROOT, 'src/cli/launcher.sh');

function timed(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<{ ms: number; code: number | null }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'ignore', process.env.CLI_BENCH_STDERR ? 'inherit' : 'ignore'] });
    child.on('error', reject);
    child.on('close', (code) => resolve({ ms: performance.now() - started, code }));
  });
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};

async function main(): Promise<void> {
  const etcd = await startEtcd();
  const scratch = mkdtempSync(join(tmpdir(), 'cli-bench-'));
  try {
    const empty = join(scratch, 'empty.js');
    writeFileSync(empty, '');
    const env = { ...process.env, ...etcd.env };
    for (const name of ['WEB', 'APP', 'DB']) {
      const created = await timed([process.execPath, CLI, 'profile', 'add', name], env);
      if (created.code !== 0) throw new Error(`calicoctl profile add ${name} failed (exit ${created.code})`);
    }
    await timed([process.execPath, CLI, 'profile', 'WEB', 'rule', 'add', 'inbound', 'allow', 'tcp', 'to', 'ports', '80'], env);

    const cases: Array<{ label: string; argv: string[]; expectCode: number }> = [
      { label: 'node, empty script (runtime floor)', argv: [process.execPath, empty], expectCode: 0 },
      { label: 'node, empty script, NODE_EXTRA_CA_CERTS unset', argv: ['env', '-u', 'NODE_EXTRA_CA_CERTS', process.execPath, empty], expectCode: 0 },
      { label: 'etcdctl get (one key)', argv: ['etcdctl', `--endpoints=${etcd.endpoint}`, 'get', '/calico/v1/policy/profile/WEB/rules'], expectCode: 0 },
      { label: 'calicoctl --help', argv: [COMMAND, '--help'], expectCode: 0 },
      { label: 'calicoctl usage error', argv: [COMMAND, 'profile', 'bogus'], expectCode: 1 },
      { label: 'node dist/calicoctl.cjs profile show (no launcher)', argv: [process.execPath, CLI, 'profile', 'show'], expectCode: 0 },
      { label: 'calicoctl profile show', argv: [COMMAND, 'profile', 'show'], expectCode: 0 },
      { label: 'calicoctl profile WEB rule show', argv: [COMMAND, 'profile', 'WEB', 'rule', 'show'], expectCode: 0 },
    ];
    const samples = new Map<string, number[]>(cases.map((c) => [c.label, []]));
    for (let run = 0; run < RUNS; run++) {
      for (const c of cases) {
        const { ms, code } = await timed(c.argv, env);
        if (code !== c.expectCode) throw new Error(`${c.label}: exit ${code}, expected ${c.expectCode}`);
        samples.get(c.label)!.push(ms);
      }
    }
    const etcdctl = median(samples.get('etcdctl get (one key)')!);
    const node = median(samples.get('node, empty script (runtime floor)')!);
    console.log(`calicoctl start-up, median of ${RUNS} interleaved runs (NODE_EXTRA_CA_CERTS ${process.env.NODE_EXTRA_CA_CERTS ? 'set' : 'unset'})`);
    console.log('| command | median ms | × etcdctl | over node floor | target |');
    console.log('|---|---|---|---|---|');
    for (const c of cases) {
      const ms = median(samples.get(c.label)!);
      const read = c.label.startsWith('calicoctl') && c.label.includes('show');
      const target = read ? `≤ 150 ms and ≤ 3 × etcdctl: ${ms <= 150 && ms <= 3 * etcdctl ? 'yes' : 'NO'}` : '—';
      console.log(`| ${c.label} | ${ms.toFixed(0)} | ${(ms / etcdctl).toFixed(2)}× | ${(ms - node).toFixed(0)} ms | ${target} |`);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
    await etcd.stop();
  }
}

await main();
