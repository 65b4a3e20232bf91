/**
 * The netns test harness itself: namespaces are created with loopback up, linked with veths,
 * isolated from each other, and destroyed (with their processes) idempotently.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { createNetns, linkNetns, type Netns } from '../../helpers/netns.js';

const created: Netns[] = [];
afterAll(async () => {
  for (const ns of created) await ns.destroy();
});

function exists(name: string): boolean {
  return spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').some((l) => l.split(' ')[0] === name);
}

describe('netns harness', () => {
  it('creates a namespace with loopback up, runs commands, reports failures', async () => {
    const ns = await createNetns('harness');
    created.push(ns);
    expect(ns.name).toMatch(/^ca-harness-[0-9a-f]{8}$/);
    expect(exists(ns.name)).toBe(true);
    const link = await ns.exec(['ip', '-o', 'link', 'show', 'lo']);
    expect(link.stdout).toMatch(/UP/);
    const echoed = await ns.exec(['cat'], { input: 'hello' });
    expect(echoed.stdout).toBe('hello');
    await expect(ns.exec(['false'])).rejects.toThrow(/exited with 1/);
    expect((await ns.exec(['false'], { allowFail: true })).code).toBe(1);
  });

  it('links two namespaces with a veth pair that carries packets', async () => {
    const a = await createNetns('harness-a');
    const b = await createNetns('harness-b');
    created.push(a, b);
    await linkNetns(a, b, { ifA: 'va', ifB: 'vb', addrA: '192.0.2.1/24', addrB: '192.0.2.2/24' });
    const ping = await a.exec(['ping', '-c', '1', '-W', '2', '192.0.2.2']);
    expect(ping.stdout).toMatch(/1 received/);
    // The veth is not visible in the root namespace.
    expect(spawnSync('ip', ['link', 'show', 'va']).status).not.toBe(0);
  });

  it('destroy kills processes inside and is idempotent', async () => {
    const ns = await createNetns('harness');
    created.push(ns);
    const sleeper = ns.exec(['sleep', '60'], { allowFail: true });
    for (let i = 0; i < 50 && spawnSync('ip', ['netns', 'pids', ns.name], { encoding: 'utf8' }).stdout.trim() === ''; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await ns.destroy();
    const result = await sleeper;
    expect(result.code).not.toBe(0);
    expect(exists(ns.name)).toBe(false);
    await ns.destroy();
  });

  // Runs the built harness (dist/, from `npm run build`) in a child that exits without cleaning up.
  const builtHarness = fileURLToPath(new URL('../../../dist/test/helpers/netns.js', import.meta.url));
  it.skipIf(!existsSync(builtHarness))('a process that exits without destroying leaves no namespace behind', () => {
    const script = `import(${JSON.stringify(builtHarness)}).then(async (m) => { const ns = await m.createNetns('harness-exit'); console.log(ns.name); process.exit(0); });`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(child.status, child.stderr).toBe(0);
    const name = child.stdout.trim();
    expect(name).toMatch(/^ca-harness-exit-[0-9a-f]{8}$/);
    expect(exists(name)).toBe(false);
  });
});
