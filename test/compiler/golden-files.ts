/**
 * The golden files of the WEB/APP example: where they live and how they are rendered now.
 * Shared by golden.test.ts (text comparison) and real-tools.test.ts (loading into a kernel).
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compile, renderFamily } from '../../compiler/index.js';
import type { FamilyPlan } from '../../compiler/index.js';
import { webAppSnapshot } from './fixtures.js';

export const GOLDEN_DIR = join(dirname(fileURLToPath(import.meta.url)), 'golden');

export interface GoldenFile {
  file: string;
  family: 4 | 6;
  /** `ipset` for `ipset restore`, else the iptables table. */
  kind: 'ipset' | 'filter' | 'raw';
  text: string;
}

export function renderedGoldens(): { files: GoldenFile[]; v4: FamilyPlan; v6: FamilyPlan } {
  const spec = compile(webAppSnapshot());
  const v4 = renderFamily(spec.v4);
  const v6 = renderFamily(spec.v6);
  const files: GoldenFile[] = [
    { file: 'web-app.v4.ipset', family: 4, kind: 'ipset', text: v4.ipsetUpdates },
    { file: 'web-app.v4.filter.iptables', family: 4, kind: 'filter', text: v4.iptablesUpdates.filter },
    { file: 'web-app.v6.ipset', family: 6, kind: 'ipset', text: v6.ipsetUpdates },
    { file: 'web-app.v6.filter.ip6tables', family: 6, kind: 'filter', text: v6.iptablesUpdates.filter },
    { file: 'web-app.v6.raw.ip6tables', family: 6, kind: 'raw', text: v6.iptablesUpdates.raw },
  ];
  return { files, v4, v6 };
}
