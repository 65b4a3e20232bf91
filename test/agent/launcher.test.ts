/**
 * agent/launcher.sh, the `calico-agent` command: run through a symlink from elsewhere (as npm
 * links it onto PATH), it starts the real agent with glibc's malloc tuning in its environment and
 * jemalloc preloaded (libjemalloc2: deploy/scripts/setup.sh, which .ci/run runs, and the image
 * install it), keeps values the operator set, passes arguments and CALICO_AGENT_NODE_FLAGS (here:
 * a preloaded probe reporting what the agent's process sees, at its start and at its exit) on,
 * and replaces itself (the agent has the launcher's pid: no extra process between a supervisor
 * and the agent). The agent's children start without the launcher's preload.
 */
import { existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, test } from 'vitest';
import { productVersion } from '../../src/version.js';
import { runCommand } from '../helpers/run-node.js';

const LAUNCHER = fileURLToPath(new URL('../../agent/launcher.sh', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'launcher-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Preloaded into the agent's Node process: reports what that process sees at its start, and
// at its exit what a child it would start inherits and which malloc the process itself runs on.
const probe = join(dir, 'probe.cjs');
writeFileSync(
  probe,
  `const env = () => ({ preload: process.env.LD_PRELOAD, marker: process.env.CALICO_AGENT_PRELOADED });
const start = { pid: process.pid, mmap: process.env.MALLOC_MMAP_THRESHOLD_, trim: process.env.MALLOC_TRIM_THRESHOLD_, main: process.argv[1], ...env() };
process.on('exit', () => {
  const jemalloc = require('node:fs').readFileSync('/proc/self/maps', 'utf8').includes('libjemalloc');
  process.stderr.write(JSON.stringify({ start, atExit: { ...env(), jemalloc } }) + '\\n');
});
`,
);
const linked = join(dir, 'calico-agent');
symlinkSync(LAUNCHER, linked);
const JEMALLOC = installedJemalloc();

function installedJemalloc(): string | undefined {
  const multiarch = `/usr/lib/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu/libjemalloc.so.2`;
  return existsSync(multiarch) ? multiarch : undefined;
}

interface Seen {
  start: { pid: number; mmap?: string; trim?: string; main: string; preload?: string; marker?: string };
  atExit: { preload?: string; marker?: string; jemalloc: boolean };
}

async function run(env: Record<string, string>): Promise<{ pid: number; stdout: string; seen: Seen }> {
  const result = await runCommand(linked, ['--version'], { PATH: process.env.PATH ?? '', CALICO_AGENT_NODE_FLAGS: `--require=${probe} --no-warnings`, ...env }, '', tmpdir());
  if (result.code !== 0) throw new Error(`exit ${result.code}: ${result.stderr}`);
  return { pid: result.pid, stdout: result.stdout, seen: JSON.parse(result.stderr.trim().split('\n').at(-1)!) as Seen };
}

test('starts the agent in place of itself, with the malloc tuning', async () => {
  const { pid, stdout, seen } = await run({});
  expect(stdout).toBe(`calico-agent ${productVersion()}\n`);
  expect(seen.start.pid).toBe(pid);
  expect(seen.start.main).toBe(fileURLToPath(new URL('../../dist/agent/main.js', import.meta.url)));
  expect(seen.start).toMatchObject({ mmap: '65536', trim: '131072' });
});

test('keeps the values the operator set', async () => {
  const { seen } = await run({ MALLOC_MMAP_THRESHOLD_: '1048576' });
  expect(seen.start).toMatchObject({ mmap: '1048576', trim: '131072' });
});

test('the agent runs on jemalloc, and its children start without it', async () => {
  expect(JEMALLOC, 'libjemalloc2 is installed (.ci/run installs it)').toBeDefined();
  const { seen } = await run({});
  expect(seen.start).toMatchObject({ preload: JEMALLOC, marker: JEMALLOC });
  expect(seen.atExit).toEqual({ jemalloc: true });
});

test('an LD_PRELOAD the operator set, or CALICO_AGENT_JEMALLOC=off, means no jemalloc', async () => {
  const operator = await run({ LD_PRELOAD: 'libm.so.6' });
  expect(operator.seen.start).toMatchObject({ preload: 'libm.so.6' });
  expect(operator.seen.start.marker).toBeUndefined();
  expect(operator.seen.atExit).toEqual({ preload: 'libm.so.6', jemalloc: false });
  const off = await run({ CALICO_AGENT_JEMALLOC: 'off' });
  expect(off.seen.atExit).toEqual({ jemalloc: false });
});
