/**
 * The product version, read from our package.json (one directory up from src/ in the sources,
 * two from dist/src/ in a build or an installed package), so `--version` of every command names
 * the installed package with no second copy to keep in step.
 */
import { readFileSync } from 'node:fs';

const PACKAGE_NAME = 'calico-agent';

export function productVersion(): string {
  for (const candidate of ['../package.json', '../../package.json']) {
    try {
      const manifest = JSON.parse(readFileSync(new URL(candidate, import.meta.url), 'utf8')) as { name?: unknown; version?: unknown };
      if (manifest.name === PACKAGE_NAME && typeof manifest.version === 'string') return manifest.version;
    } catch {
      // not there (or not ours): try the next place
    }
  }
  return 'unknown';
}

/** `<command> <version>`, the `--version` line of each of our commands. */
export function versionLine(command: string): string {
  return `${command} ${productVersion()}`;
}
