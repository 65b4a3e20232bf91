/**
 * The `calicoctl` command as npm installs it: a symlink to src/cli/launcher.sh, which runs the
 * bundled CLI. Arguments and exit codes pass through; NODE_EXTRA_CA_CERTS reaches Node.js only
 * when an etcd endpoint may use https. Seen from outside: Node.js warns at start-up about an
 * extra-certificates file it cannot read, so a missing file shows whether the variable got there.
 */
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { builtPath, runCommand } from '../helpers/run-node.js';

const scratch = mkdtempSync(join(tmpdir(), 'calicoctl-launcher-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const command = join(scratch, 'calicoctl');
symlinkSync(builtPath('src/cli/launcher.sh'), command);

const base: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME };
const missingCerts = join(scratch, 'no-such-ca.pem');

describe('calicoctl launcher', () => {
  it('runs the bundled CLI through a symlink, passing arguments and exit codes', async () => {
    const version = await runCommand(command, ['--version'], { ...base, ETCD_ENDPOINTS: 'http://127.0.0.1:9' });
    expect(version).toMatchObject({ code: 0, stderr: '' });
    expect(version.stdout).toMatch(/^calicoctl \d+\.\d+\.\d+/);
    const usage = await runCommand(command, ['profile', 'bogus'], { ...base, ETCD_ENDPOINTS: 'http://127.0.0.1:9' });
    expect(usage.code).toBe(1);
    expect(usage.stdout + usage.stderr).toContain('Usage:');
  });

  it.each([
    { label: 'no etcd variables (default http://127.0.0.1:2379)', etcdEnv: {}, passedOn: false },
    { label: 'ETCD_ENDPOINTS all http', etcdEnv: { ETCD_ENDPOINTS: 'http://127.0.0.1:9,http://[::1]:9' }, passedOn: false },
    { label: 'ETCD_AUTHORITY with ETCD_SCHEME http', etcdEnv: { ETCD_AUTHORITY: '127.0.0.1:9', ETCD_SCHEME: 'http' }, passedOn: false },
    { label: 'one ETCD_ENDPOINTS entry https', etcdEnv: { ETCD_ENDPOINTS: 'http://127.0.0.1:9,HTTPS://127.0.0.1:9' }, passedOn: true },
    { label: 'ETCD_SCHEME https', etcdEnv: { ETCD_AUTHORITY: '127.0.0.1:9', ETCD_SCHEME: 'https' }, passedOn: true },
  ])('NODE_EXTRA_CA_CERTS with $label: passed on = $passedOn', async ({ etcdEnv, passedOn }) => {
    const run = await runCommand(command, ['--version'], { ...base, ...etcdEnv, NODE_EXTRA_CA_CERTS: missingCerts });
    expect(run.code).toBe(0);
    if (passedOn) expect(run.stderr).toContain(`Ignoring extra certs from \`${missingCerts}\``);
    else expect(run.stderr).toBe('');
  });
});
