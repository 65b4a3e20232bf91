#!/usr/bin/env node
// Re-adds lockfile entries for optional packages built for other platforms (rollup's native
// binaries) that npm could not record because this workplace's registry mirror does not serve
// them. Without the entries `npm ci` refuses the lockfile ("Missing: … from lock file"); with
// them it skips the packages by their os/cpu/libc, as it would on a full registry.
// Run after any `npm install` that rewrites package-lock.json:
//   node .ci/record-optional-platform-packages.mjs
import { readFileSync, writeFileSync } from 'node:fs';

const lockPath = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(lockPath, 'utf8'));
const packages = lock.packages;
let added = 0;
for (const entry of Object.values(packages)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const key = `node_modules/${name}`;
    if (packages[key] || !name.startsWith('@rollup/rollup-')) continue;
    const m = /^@rollup\/rollup-([a-z0-9]+)-([a-z0-9]+)(?:-([a-z]+))?$/.exec(name);
    if (!m) continue;
    const [, os, cpu, abi] = m;
    const record = { version, cpu: [cpu], dev: entry.dev === true || undefined, license: 'MIT', optional: true, os: [os] };
    if (abi?.startsWith('musl')) record.libc = ['musl'];
    else if (os === 'linux' && (abi === 'gnu' || abi === 'gnueabihf')) record.libc = ['glibc'];
    packages[key] = Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined).sort(([a], [b]) => a.localeCompare(b)));
    added++;
  }
}
lock.packages = Object.fromEntries(Object.entries(packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b))));
writeFileSync(lockPath, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`recorded ${added} optional platform package(s)`);
