/**
 * Backend detection (legacy vs nft): canaries, rule counts, the host's own iptables on a tie,
 * the nft tables left unread when empty legacy tables on an nft host decide, against real save
 * tools in namespaces populated with legacy and/or nft rules; plus strict configured backends and
 * the plain-name fallback.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createCommandRunner } from '../../../agent/dataplane/command-runner.js';
import { IptablesBackendError, chooseMode, selectIptablesBackend } from '../../../agent/dataplane/iptables-backend.js';
import type { CommandRunner } from '../../../agent/dataplane/types.js';
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

/** A runner whose `iptables --version` answers `variant` (the host's own command); all else is real. */
function hostIptablesIs(inner: CommandRunner, variant: string): CommandRunner {
  return {
    run(argv, options) {
      if (argv[0] === 'iptables' && argv[1] === '--version') {
        return Promise.resolve({ code: 0, stdout: `iptables v1.8.9 (${variant})\n`, stderr: '', durationMs: 0 });
      }
      return inner.run(argv, options);
    },
  };
}

describe('selectIptablesBackend (auto)', () => {
  it('chooses the variant holding more rules, whichever it is', async () => {
    const legacy = await namespaceWith(12, 3);
    expect(await selectIptablesBackend(createCommandRunner({ netns: legacy.name }), 'auto')).toMatchObject({
      mode: 'legacy',
      source: 'detected',
      reason: 'more-rules',
      legacyRules: 12,
      nftRules: 3,
      binaries: {
        4: { save: 'iptables-legacy-save', restore: 'iptables-legacy-restore' },
        6: { save: 'ip6tables-legacy-save', restore: 'ip6tables-legacy-restore' },
      },
    });
    const nft = await namespaceWith(2, 3);
    expect(await selectIptablesBackend(createCommandRunner({ netns: nft.name }), 'auto')).toMatchObject({
      mode: 'nft',
      reason: 'more-rules',
      legacyRules: 2,
      nftRules: 3,
    });
  });

  it('on a tie (an empty host) chooses the variant the host iptables command is', async () => {
    const empty = await namespaceWith(0, 0);
    const real = createCommandRunner({ netns: empty.name });
    const hostVersion = (await real.run(['iptables', '--version'])).stdout;
    const expected = hostVersion.includes('(nf_tables)') ? 'nft' : 'legacy';
    expect((await selectIptablesBackend(real, 'auto')).mode).toBe(expected);
    expect(await selectIptablesBackend(hostIptablesIs(real, 'legacy'), 'auto')).toMatchObject({ mode: 'legacy', reason: 'host-default', legacyRules: 0, nftRules: 0 });
    // Empty legacy tables and an nft host: nft by every rule, without reading the nft tables.
    const unread = await selectIptablesBackend(hostIptablesIs(real, 'nf_tables'), 'auto');
    expect(unread).toMatchObject({ mode: 'nft', reason: 'legacy-empty', legacyRules: 0 });
    expect(unread).not.toHaveProperty('nftRules');
    const tie = await namespaceWith(3, 3);
    expect(await selectIptablesBackend(hostIptablesIs(createCommandRunner({ netns: tie.name }), 'nf_tables'), 'auto')).toMatchObject({
      mode: 'nft',
      reason: 'host-default',
    });
  });

  it('empty legacy tables on an nft host: nft, the nft tables unread; on a legacy host they are counted', async () => {
    const ns = await namespaceWith(0, 5);
    const nftHost = recording(hostIptablesIs(createCommandRunner({ netns: ns.name }), 'nf_tables'));
    expect(await selectIptablesBackend(nftHost, 'auto')).toMatchObject({ mode: 'nft', reason: 'legacy-empty', legacyRules: 0 });
    expect(nftHost.commands.map((c) => c.argv[0])).toEqual(expect.arrayContaining(['ip6tables-legacy-save', 'iptables-legacy-save']));
    expect(nftHost.commands.filter((c) => c.argv[0]!.includes('-nft-save'))).toEqual([]);
    const legacyHost = recording(hostIptablesIs(createCommandRunner({ netns: ns.name }), 'legacy'));
    expect(await selectIptablesBackend(legacyHost, 'auto')).toMatchObject({ mode: 'nft', reason: 'more-rules', legacyRules: 0, nftRules: 5 });
    expect(legacyHost.commands.map((c) => c.argv[0])).toEqual(expect.arrayContaining(['ip6tables-nft-save', 'iptables-nft-save']));
  });

  it('a kube canary chain decides before the rule counts', async () => {
    const ns = await namespaceWith(20, 0);
    await ns.exec(['iptables-nft-restore', '--noflush'], { input: '*mangle\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n' });
    expect(await selectIptablesBackend(createCommandRunner({ netns: ns.name }), 'auto')).toMatchObject({ mode: 'nft', reason: 'kube-canary' });
    const other = await namespaceWith(0, 20);
    await other.exec(['iptables-legacy-restore', '--noflush'], { input: '*mangle\n:KUBE-KUBELET-CANARY - [0:0]\nCOMMIT\n' });
    expect(await selectIptablesBackend(createCommandRunner({ netns: other.name }), 'auto')).toMatchObject({ mode: 'legacy', reason: 'kube-canary' });
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

  it('falls back to plain binary names only when they are the configured variant; else a configuration error', async () => {
    const runner = createCommandRunner();
    const withoutVariants = async (name: string) => !/-(nft|legacy)-/.test(name);
    const plainVariant = (await runner.run(['ip6tables-save', '--version'])).stdout.includes('(nf_tables)') ? 'nft' : 'legacy';
    const otherVariant = plainVariant === 'nft' ? 'legacy' : 'nft';
    const plain = await selectIptablesBackend(runner, plainVariant, withoutVariants);
    expect(plain.binaries[6]).toEqual({ save: 'ip6tables-save', restore: 'ip6tables-restore' });
    const wrong = selectIptablesBackend(runner, otherVariant, withoutVariants);
    await expect(wrong).rejects.toBeInstanceOf(IptablesBackendError);
    await expect(wrong).rejects.toThrow(`iptables backend ${otherVariant} is not installed: no iptables-${otherVariant}-save, and iptables-save is another variant`);
    await expect(selectIptablesBackend(runner, 'legacy', async () => false)).rejects.toThrow(
      'iptables backend legacy is not installed: no iptables-legacy-save, and iptables-save is missing too',
    );
  });
});

describe('chooseMode', () => {
  const scan = (rules: number, canary = false) => ({ rules, canary });
  it('canaries first (nft before legacy), then more rules, then the host default, then legacy', () => {
    expect(chooseMode(scan(100, true), scan(0, true), 'legacy')).toEqual({ mode: 'nft', reason: 'kube-canary' });
    expect(chooseMode(scan(0, true), scan(100), 'nft')).toEqual({ mode: 'legacy', reason: 'kube-canary' });
    expect(chooseMode(scan(9), scan(10), 'legacy')).toEqual({ mode: 'nft', reason: 'more-rules' });
    expect(chooseMode(scan(11), scan(10), 'nft')).toEqual({ mode: 'legacy', reason: 'more-rules' });
    expect(chooseMode(scan(0), scan(0), 'nft')).toEqual({ mode: 'nft', reason: 'host-default' });
    expect(chooseMode(scan(4), scan(4), undefined)).toEqual({ mode: 'legacy', reason: 'host-default' });
  });
});
