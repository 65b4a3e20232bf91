/**
 * `--version` of the three commands: each prints `<command> <version of package.json>` on stdout
 * and exits 0, without etcd (the environment names an endpoint where nothing listens).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { builtPath, runNode } from '../helpers/run-node.js';

const version = (JSON.parse(readFileSync(builtPath('package.json'), 'utf8')) as { version: string }).version;
const env = { ...process.env, ETCD_ENDPOINTS: 'http://127.0.0.1:9' };

describe('--version', () => {
  it.each([
    ['calicoctl', 'dist/calicoctl.cjs'],
    ['calico-agent', 'dist/agent/main.js'],
    ['calico-docker-plugin', 'dist/agent/docker-plugin/main.js'],
  ])('%s', async (command, script) => {
    expect(version).toMatch(/^\d+\.\d+\.\d+/);
    expect(await runNode(script, ['--version'], env)).toEqual({ code: 0, stdout: `${command} ${version}\n`, stderr: '' });
  });

  it('is listed in the usage of calicoctl', async () => {
    const help = await runNode('dist/calicoctl.cjs', ['--help'], env);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('calicoctl --version');
  });
});
