/**
 * The npm package as users get it: `npm pack` holds the built runtime only (no tests, sources or
 * source maps), and `npm install -g` of the tarball puts calicoctl, calico-agent and
 * calico-docker-plugin on PATH, each answering --version. Installs into a temporary prefix from
 * npm's cache (`--prefer-offline`; `npm ci` filled it); packs with `--ignore-scripts`, since the
 * test command has just built dist/ and other test files are using it.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, test } from 'vitest';
import { REPO_ROOT } from '../lab/lab.js';

const run = promisify(execFile);
const scratch: string[] = [];
afterAll(async () => {
  for (const dir of scratch) await rm(dir, { recursive: true, force: true });
});

describe('npm package', () => {
  test('holds the built runtime only', async () => {
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: REPO_ROOT });
    const files = (JSON.parse(stdout) as [{ files: { path: string }[] }])[0].files.map((f) => f.path);
    for (const needed of ['dist/calicoctl.cjs', 'src/cli/launcher.sh', 'agent/launcher.sh', 'dist/agent/main.js', 'dist/agent/docker-plugin/main.js', 'dist/agent/dataplane/exec-helper-main.js', 'package.json']) {
      expect(files).toContain(needed);
    }
    expect(files.filter((path) => path.startsWith('dist/test/') || path.endsWith('.map') || path.endsWith('.ts') || !/^(dist\/|agent\/launcher\.sh$|src\/cli\/launcher\.sh$|package\.json$|README\.md$)/.test(path))).toEqual([]);
  });

  test('npm install -g of the tarball puts the three commands on PATH', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'calico-package-'));
    scratch.push(dir);
    const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir], { cwd: REPO_ROOT });
    const tarball = join(dir, stdout.trim().split('\n').at(-1)!);
    const prefix = join(dir, 'prefix');
    await run('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tarball], { cwd: dir });
    const version = (JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    const env = { ...process.env, PATH: `${join(prefix, 'bin')}:${process.env.PATH}` };
    for (const command of ['calicoctl', 'calico-agent', 'calico-docker-plugin']) {
      const { stdout: line } = await run(command, ['--version'], { env });
      expect(line).toBe(`${command} ${version}\n`);
    }
  }, 180_000);
});
