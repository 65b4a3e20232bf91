/**
 * Backend detection (legacy vs nft) as Felix does it, against real save tools in namespaces
 * populated with legacy and/or nft rules; plus configured backends and binary fallback.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createCommandRunner } from '../../../agent/dataplane/command-runner.js';
import { chooseMode, selectIptablesBackend } from '../../../agent/dataplane/iptables-backend.js';
import { createNetns, type Netns } from '../../helpers/netns.js';
import { recording } from './recording-runner.js';

let namespaces: Netns[] = [];
afterEach(async () => {
  for (const ns of namespaces) await ns.destroy();
  namespaces = [];
});

async function namespaceWith(legacyRules: number, nftRules: number): Promise<Netns> {
  const ns = await createNetns('backend');
  namespaces.push(ns);
  const rules = (count: number) =>
    ['*filter', ...Array.from({ length: count }, (_, i) => `-A INPUT -s 192.0.2.${i + 1}/32 -j ACCEPT`), 'COMMIT', ''].join('\n');
  if (legacyRules > 0) await ns.exec(['iptables-legacy-restore', '--noflush'], { input: rules(legacyRules) });
  if (nftRules > 0) await ns.exec(['iptables-nft-restore', '--noflush'], { input: rules(nftRules) });
  return ns;
}

describe('selectIptablesBackend (auto)', () => {
  it('chooses legacy when there are at least 10 legacy rules, without asking nft', async () => {
    const ns = await namespaceWith(10, 12);
    const runner = recording(createCommandRunner({ netns: ns.name }));
    const backend = await selectIptablesBackend(runner, 'auto');
    expect(backend).toMatchObject({ mode: 'legacy', source: 'detected', legacyRules: 10 });
    expect(backend.binaries).toEqual({
      4: { save: 'iptables-legacy-save', restore: 'iptables-legacy-restore' },
      6: { save: 'ip6tables-legacy-save', restore: 'ip6tables-legacy-restore' },
    });
    expect(runner.commands.map((c) => c.argv[0])).not.toContain('iptables-nft-save');
  });

  it('chooses nft only when nft has strictly more rules', async () => {
    const more = await namespaceWith(2, 3);
    expect(await selectIptablesBackend(createCommandRunner({ netns: more.name }), 'auto')).toMatchObject({
      mode: 'nft',
      legacyRules: 2,
      nftRules: 3,
    });
    const tie = await namespaceWith(3, 3);
    expect((await selectIptablesBackend(createCommandRunner({ netns: tie.name }), 'auto')).mode).toBe('legacy');
  });

  it('chooses legacy in an empty namespace (0 = 0 is a tie)', async () => {
    const empty = await namespaceWith(0, 0);
    const backend = await selectIptablesBackend(createCommandRunner({ netns: empty.name }), 'auto');
    expect(backend).toMatchObject({ mode: 'legacy', legacyRules: 0, nftRules: 0 });
  });
});

describe('selectIptablesBackend (configured)', () => {
  it('uses the configured mode without running any save tool', async () => {
    const ns = await namespaceWith(11, 0);
    const runner = recording(createCommandRunner({ netns: ns.name }));
    const backend = await selectIptablesBackend(runner, 'nft');
    expect(backend).toEqual({
      mode: 'nft',
      source: 'configured',
      binaries: {
        4: { save: 'iptables-nft-save', restore: 'iptables-nft-restore' },
        6: { save: 'ip6tables-nft-save', restore: 'ip6tables-nft-restore' },
      },
    });
    expect(runner.commands).toEqual([]);
  });

  it('falls back to the plain binary names, and fails when neither exists', async () => {
    const runner = createCommandRunner();
    const withoutVariants = async (name: string) => !/-(nft|legacy)-/.test(name);
    const plain = await selectIptablesBackend(runner, 'nft', withoutVariants);
    expect(plain.binaries[6]).toEqual({ save: 'ip6tables-save', restore: 'ip6tables-restore' });
    await expect(selectIptablesBackend(runner, 'legacy', async () => false)).rejects.toThrow(/no iptables binary found: tried iptables-legacy-save, iptables-save/);
  });
});

describe('chooseMode', () => {
  it('follows the iptables-wrapper rule', () => {
    expect(chooseMode(10, 100)).toBe('legacy');
    expect(chooseMode(9, 10)).toBe('nft');
    expect(chooseMode(9, 9)).toBe('legacy');
    expect(chooseMode(0, 1)).toBe('nft');
  });
});
