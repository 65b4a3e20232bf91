/**
 * The systemd units as shipped (agent, Docker plugin) pass `systemd-analyze verify` without a
 * warning (a key in the wrong section is ignored by systemd, with only such a warning to show
 * for it), and start the installed commands by name.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
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
