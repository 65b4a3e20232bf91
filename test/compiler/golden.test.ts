/**
 * Golden restore text for the seeds' WEB/APP example (two local endpoints, one dual-stack, and a
 * remote WEB endpoint feeding the APP_7890 tag). The files under golden/ are exactly what a
 * fresh host receives; regenerate them with
 *   UPDATE_GOLDEN=1 npx vitest run test/compiler/golden.test.ts
 * after an intended change, and review the diff.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { GOLDEN_DIR, renderedGoldens } from './golden-files.js';

const { files, v4, v6 } = renderedGoldens();

test.each(files.map((g) => [g.file, g.text]))('%s matches its golden file', (file, text) => {
  const path = join(GOLDEN_DIR, file);
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(path, text);
  expect(existsSync(path), `${file} is missing; run with UPDATE_GOLDEN=1`).toBe(true);
  expect(text).toBe(readFileSync(path, 'utf8'));
});

test('a fresh host needs no IPv4 raw table, no deletions', () => {
  expect(v4.iptablesUpdates.raw).toBe('');
  for (const plan of [v4, v6]) {
    expect(plan.iptablesDeletions).toEqual({ filter: '', raw: '' });
    expect(plan.ipsetDeletions).toBe('');
  }
});
