/**
 * Test harness: throwaway network namespaces (`ca-<purpose>-<random>`) for tests that need a real
 * kernel dataplane (iptables, ipsets, routes, veths) without touching the root namespace.
 *
 * Invariants:
 * - Every namespace created here is registered until destroyed; a process 'exit' hook destroys
 *   whatever is left (synchronously), so a crashed test never leaks namespaces.
 * - `destroy()` kills processes still inside the namespace, then deletes it; it is idempotent.
 * - Commands run through `ip netns exec <name> …` without a shell.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Written to stdin, which is then closed. */
  input?: string;
  /** Return a non-zero exit instead of throwing. */
  allowFail?: boolean;
}

export interface Netns {
  readonly name: string;
  /** Runs argv inside the namespace; throws (with stderr) on non-zero exit unless allowFail. */
  exec(argv: readonly string[], options?: ExecOptions): Promise<ExecResult>;
  /** Kills processes left inside, then deletes the namespace. Safe to call twice. */
  destroy(): Promise<void>;
}

const live = new Set<string>();

process.on('exit', () => {
  for (const name of live) destroySync(name);
});

/** Runs a command in the current (root) namespace: only `ip netns …` management commands. */
function run(argv: readonly string[], input?: string): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const [command, ...args] = argv;
    if (command === undefined) return reject(new Error('empty argv'));
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }),
    );
    child.stdin.on('error', () => undefined); // the command may exit before reading its input
    child.stdin.end(input ?? '');
  });
}

function check(argv: readonly string[], result: ExecResult): ExecResult {
  if (result.code !== 0) {
    throw new Error(`${argv.join(' ')} exited with ${result.code}: ${result.stderr.trim()}`);
  }
  return result;
}

function pidsIn(name: string): number[] {
  const listed = spawnSync('ip', ['netns', 'pids', name], { encoding: 'utf8' });
  return (listed.stdout ?? '')
    .split('\n')
    .map((line) => Number.parseInt(line, 10))
    .filter((pid) => Number.isInteger(pid) && pid > 0 && pid !== process.pid);
}

function destroySync(name: string): void {
  for (const pid of pidsIn(name)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
  live.delete(name);
}

function randomSuffix(): string {
  return randomBytes(4).toString('hex');
}

/** Creates `ca-<purpose>-<random>` with loopback up. */
export async function createNetns(purpose: string): Promise<Netns> {
  if (!/^[a-z0-9-]{1,20}$/.test(purpose)) throw new Error(`bad netns purpose ${JSON.stringify(purpose)}`);
  const name = `ca-${purpose}-${randomSuffix()}`;
  check(['ip', 'netns', 'add', name], await run(['ip', 'netns', 'add', name]));
  live.add(name);

  const netns: Netns = {
    name,
    async exec(argv, options = {}) {
      const full = ['ip', 'netns', 'exec', name, ...argv];
      const result = await run(full, options.input);
      return options.allowFail ? result : check(full, result);
    },
    async destroy() {
      if (!live.has(name)) return;
      for (const pid of pidsIn(name)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await run(['ip', 'netns', 'del', name]);
      live.delete(name);
    },
  };
  try {
    await netns.exec(['ip', 'link', 'set', 'lo', 'up']);
  } catch (error) {
    await netns.destroy();
    throw error;
  }
  return netns;
}

export interface LinkOptions {
  /** Interface name inside `a` (≤ 15 characters). */
  ifA: string;
  /** Interface name inside `b`. */
  ifB: string;
  /** Address with prefix for ifA, e.g. `192.0.2.1/24` (optional). */
  addrA?: string;
  addrB?: string;
}

/**
 * Joins two namespaces with a veth pair and brings both ends up. The pair is created inside `a`
 * (never in the root namespace) and its peer moved to `b`.
 */
export async function linkNetns(a: Netns, b: Netns, options: LinkOptions): Promise<void> {
  await a.exec(['ip', 'link', 'add', options.ifA, 'type', 'veth', 'peer', 'name', options.ifB, 'netns', b.name]);
  if (options.addrA) await a.exec(['ip', 'addr', 'add', options.addrA, 'dev', options.ifA]);
  if (options.addrB) await b.exec(['ip', 'addr', 'add', options.addrB, 'dev', options.ifB]);
  await a.exec(['ip', 'link', 'set', options.ifA, 'up']);
  await b.exec(['ip', 'link', 'set', options.ifB, 'up']);
}
