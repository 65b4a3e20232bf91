/**
 * The systemd units as shipped (agent, Docker plugin) pass `systemd-analyze verify` without a
 * warning (a key in the wrong section is ignored by systemd, with only such a warning to show
 * for it), and start the installed commands by name; the image entrypoint dispatches as documented;
 * the DaemonSet carries the settings an operator needs (DNS with host networking, node selector,
 * pinned image, secret mode).
 */
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, test } from 'vitest';
import { REPO_ROOT } from '../lab/lab.js';

const run = promisify(execFile);

test.each(['calico-agent', 'calico-docker-plugin'])('deploy/systemd/%s.service verifies cleanly', async (command) => {
  const unit = join(REPO_ROOT, `deploy/systemd/${command}.service`);
  const { stdout, stderr } = await run('systemd-analyze', ['verify', unit]);
  expect(`${stdout}${stderr}`).toBe('');
  expect(await readFile(unit, 'utf8')).toMatch(new RegExp(`^ExecStart=${command}$`, 'm'));
});

test('the image entrypoint runs the agent for flags and any named command as given', async () => {
  const bin = await mkdtemp(join(tmpdir(), 'entrypoint-'));
  try {
    // Stand-ins for the installed commands (the real ones are tested elsewhere): each prints its name and arguments.
    for (const command of ['calico-agent', 'calicoctl']) {
      await writeFile(join(bin, command), `#!/bin/sh\necho ${command} "$@"\n`);
      await chmod(join(bin, command), 0o755);
    }
    const entrypoint = join(REPO_ROOT, 'deploy/docker-entrypoint.sh');
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
    const out = async (...args: string[]) => (await run(entrypoint, args, { env })).stdout;
    expect(await out()).toBe('calico-agent\n');
    expect(await out('--once', '--dry-run')).toBe('calico-agent --once --dry-run\n');
    expect(await out('calicoctl', 'profile', 'show')).toBe('calicoctl profile show\n');
  } finally {
    await rm(bin, { recursive: true, force: true });
  }
});

test('the DaemonSet as shipped: cluster DNS with host networking, Linux nodes, pinned image, secret mode 0400, lock file created', async () => {
  const manifest = await readFile(join(REPO_ROOT, 'deploy/kubernetes/calico-agent-daemonset.yaml'), 'utf8');
  expect(manifest).toMatch(/^ {6}hostNetwork: true\n {6}(?:#.*\n {6})*dnsPolicy: ClusterFirstWithHostNet$/m);
  expect(manifest).toMatch(/^ {6}nodeSelector:\n {8}kubernetes\.io\/os: linux$/m);
  expect(manifest).toMatch(/^ {10}image: \S+\/\S+:\d[\w.]*\n {10}imagePullPolicy: IfNotPresent$/m);
  expect(manifest).toMatch(/secretName: calico-agent-etcd\n(?: {12}#.*\n)* {12}defaultMode: 0400$/m);
  expect(manifest).toMatch(/path: \/run\/xtables\.lock\n {12}type: FileOrCreate$/m);
});
