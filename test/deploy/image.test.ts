/**
 * The container image as shipped: deploy/scripts/test-image.sh builds the Dockerfile against a
 * locally made base image with a private dockerd, checks the commands and tools in it, and runs
 * the agent container in a throwaway namespace with its own etcd until it has programmed that
 * namespace and is ready. The script cleans up after itself; this test checks its report.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, test } from 'vitest';
import { REPO_ROOT } from '../lab/lab.js';

const run = promisify(execFile);

test('the image builds, carries the three commands and the kernel tools, and its agent container programs a namespace', async () => {
  const { stdout } = await run('bash', [join(REPO_ROOT, 'deploy/scripts/test-image.sh')], { maxBuffer: 16 * 1024 * 1024 });
  const steps = stdout.trimEnd().split('\n');
  expect(steps.at(-1)).toBe('test-image: passed');
  expect(steps).toContain('test-image: the agent container (host network, NET_ADMIN) programmed the namespace and is ready');
  // .dockerignore keeps the context to the sources (an unignored built checkout sent 84 MB).
  const context = /context ([\d.]+)(kB|MB|GB)/.exec(stdout);
  expect(context && Number(context[1]) * { kB: 1e-3, MB: 1, GB: 1e3 }[context[2] as 'kB' | 'MB' | 'GB']).toBeLessThan(10);
}, 15 * 60_000);
