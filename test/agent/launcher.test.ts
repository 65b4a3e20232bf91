/**
 * agent/launcher.sh, the `calico-agent` command: run through a symlink from elsewhere (as npm
 * links it onto PATH), it starts the real agent with glibc's malloc tuning in its environment,
 * keeps values the operator set, passes arguments and CALICO_AGENT_NODE_FLAGS (here: a preloaded
 * probe reporting what the agent's process sees) on, and replaces itself (the agent has the
 * launcher's pid: no extra process between a supervisor and the agent).
 */
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, test } from 'vitest';
import { productVersion } from '../../src/version.js';
import { runCommand } from '../helpers/run-node.js';

const LAUNCHER = fileURLToPath(new URL('../../agent/launcher.sh', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'launcher-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Preloaded into the agent's Node process: reports what that process sees.
const probe = join(dir, 'probe.cjs');
writeFileSync(probe, `process.stderr.write(JSON.stringify({ pid: process.pid, mmap: process.env.MALLOC_MMAP_THRESHOLD_, trim: process.env.MALLOC_TRIM_THRESHOLD_, main: process.argv[1] }) + '\\n');\n`);
const linked = join(dir, 'calico-agent');
symlinkSync(LAUNCHER, linked);

async function run(env: Record<string, string>): Promise<{ pid: number; stdout: string; seen: { pid: number; mmap?: string; trim?: string; main: string } }> {
  const result = await runCommand(linked, ['--version'], { PATH: process.env.PATH ?? '', CALICO_AGENT_NODE_FLAGS: `--require=${probe} --no-warnings`, ...env }, '', tmpdir());
  if (result.code !== 0) throw new Error(`exit ${result.code}: ${result.stderr}`);
  return { pid: result.pid, stdout: result.stdout, seen: JSON.parse(result.stderr.trim().split('\n')[0]!) as { pid: number; main: string } };
}

test('starts the agent in place of itself, with the malloc tuning', async () => {
  const { pid, stdout, seen } = await run({});
  expect(stdout).toBe(`calico-agent ${productVersion()}\n`);
  expect(seen.pid).toBe(pid);
  expect(seen.main).toBe(fileURLToPath(new URL('../../dist/agent/main.js', import.meta.url)));
  expect(seen).toMatchObject({ mmap: '65536', trim: '131072' });
});

test('keeps the values the operator set', async () => {
  const { seen } = await run({ MALLOC_MMAP_THRESHOLD_: '1048576' });
  expect(seen).toMatchObject({ mmap: '1048576', trim: '131072' });
});
