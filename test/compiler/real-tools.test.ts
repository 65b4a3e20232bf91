/**
 * The compiler's restore text against the real tools, inside throwaway network namespaces (one
 * per iptables backend: nf_tables and legacy): the golden files load with `ipset restore` and
 * `ip[6]tables-restore --noflush`, read back with `*-save` into exactly our chains, rule counts
 * and hash comments; a diff plan applied on top of a loaded state yields the new state, and
 * planning again from the read-back kernel is empty (0 bytes).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  compile,
  defaultCompilerConfig,
  isEmptyPlan,
  isOwnedChain,
  kernelStateOf,
  planFamily,
} from '../../compiler/index.js';
import type { FamilyPlan, FamilySpec, KernelFamilyState, KernelIpsetState, KernelTableState, TableName } from '../../compiler/index.js';
import { createNetns, type Netns } from '../helpers/netns.js';
import { endpointInput, profile, webAppSnapshot } from './fixtures.js';
import { GOLDEN_DIR, renderedGoldens } from './golden-files.js';

const BACKENDS = [
  { name: 'nft', v4: 'iptables', v6: 'ip6tables' },
  { name: 'legacy', v4: 'iptables-legacy', v6: 'ip6tables-legacy' },
] as const;
type Backend = (typeof BACKENDS)[number];

const HASH_RE = /--comment "?cali:([0-9a-f]+)"?/;
const BUILTINS = new Set(['INPUT', 'FORWARD', 'OUTPUT', 'PREROUTING']);

/** Minimal `iptables-save` reader (hashes only), independent of the agent's. */
function parseSave(text: string): KernelTableState {
  const chains = new Map<string, (string | null)[]>();
  const builtins = new Map<string, { hash: string | null; rule: string }[]>();
  for (const line of text.split('\n')) {
    const declared = /^:(\S+) /.exec(line);
    if (declared && isOwnedChain(declared[1]!)) chains.set(declared[1]!, []);
    const appended = /^-A (\S+) (.*)$/.exec(line);
    if (!appended) continue;
    const [, chain, rule] = appended as unknown as [string, string, string];
    const hash = HASH_RE.exec(rule)?.[1] ?? null;
    if (BUILTINS.has(chain)) {
      const rules = builtins.get(chain) ?? [];
      rules.push({ hash, rule });
      builtins.set(chain, rules);
    } else if (isOwnedChain(chain)) chains.get(chain)!.push(hash);
  }
  return { chains, builtins };
}

function parseIpsetSave(text: string, family: 'inet' | 'inet6'): Map<string, KernelIpsetState> {
  const sets = new Map<string, KernelIpsetState & { members: Set<string> }>();
  for (const line of text.split('\n')) {
    const create = /^create (\S+) (\S+) family (\S+) .*maxelem (\d+)/.exec(line);
    if (create && create[3] === family) {
      sets.set(create[1]!, { name: create[1]!, type: create[2]!, family, maxelem: Number(create[4]), members: new Set() });
    }
    const add = /^add (\S+) (\S+)/.exec(line);
    if (add) sets.get(add[1]!)?.members.add(add[2]!);
  }
  return sets;
}

class RealKernel {
  constructor(
    private readonly ns: Netns,
    private readonly backend: Backend,
  ) {}

  private tool(family: 4 | 6): string {
    return family === 4 ? this.backend.v4 : this.backend.v6;
  }

  async restoreIptables(family: 4 | 6, input: string): Promise<void> {
    if (input !== '') await this.ns.exec([`${this.tool(family)}-restore`, '--noflush'], { input });
  }

  async restoreIpset(input: string): Promise<void> {
    if (input !== '') await this.ns.exec(['ipset', 'restore'], { input });
  }

  async apply(family: 4 | 6, plan: FamilyPlan): Promise<void> {
    await this.restoreIpset(plan.ipsetUpdates);
    for (const table of ['filter', 'raw'] as const) await this.restoreIptables(family, plan.iptablesUpdates[table]);
    for (const table of ['filter', 'raw'] as const) await this.restoreIptables(family, plan.iptablesDeletions[table]);
    await this.restoreIpset(plan.ipsetDeletions);
  }

  async read(family: 4 | 6): Promise<KernelFamilyState> {
    const table = async (t: TableName) =>
      parseSave((await this.ns.exec([`${this.tool(family)}-save`, '-t', t])).stdout);
    const ipsets = parseIpsetSave((await this.ns.exec(['ipset', 'save'])).stdout, family === 4 ? 'inet' : 'inet6');
    return { tables: { filter: await table('filter'), raw: await table('raw') }, ipsets };
  }
}

/** Our chains' hashes, our hooks' hashes and our sets, as comparable data. */
function summary(state: KernelFamilyState): unknown {
  const table = (t: KernelTableState) => ({
    chains: Object.fromEntries([...t.chains].sort(([a], [b]) => (a < b ? -1 : 1))),
    hooks: Object.fromEntries(
      [...t.builtins]
        .filter(([, rules]) => rules.length > 0)
        .map(([name, rules]) => [name, rules.map((r) => r.hash)]),
    ),
  });
  return {
    filter: table(state.tables.filter),
    raw: table(state.tables.raw),
    ipsets: [...state.ipsets.values()]
      .map((s) => ({ name: s.name, type: s.type, family: s.family, maxelem: s.maxelem, members: [...s.members].sort() }))
      .sort((a, b) => (a.name < b.name ? -1 : 1)),
  };
}

describe.each(BACKENDS)('real tools ($name backend)', (backend) => {
  let ns: Netns | undefined;
  let kernel: RealKernel;

  beforeAll(async () => {
    ns = await createNetns(`comp-${backend.name}`);
    kernel = new RealKernel(ns, backend);
  });
  afterAll(async () => {
    await ns?.destroy();
  });

  test('golden files load and read back as exactly our chains, rules and hashes', async () => {
    const spec = compile(webAppSnapshot());
    const goldens = renderedGoldens().files;
    const order = ['ipset', 'filter', 'raw'];
    for (const golden of [...goldens].sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind))) {
      const text = readFileSync(join(GOLDEN_DIR, golden.file), 'utf8');
      expect(text).toBe(golden.text);
      if (golden.kind === 'ipset') await kernel.restoreIpset(text);
      else await kernel.restoreIptables(golden.family, text);
    }
    for (const [family, familySpec] of [
      [4, spec.v4],
      [6, spec.v6],
    ] as [4 | 6, FamilySpec][]) {
      const read = await kernel.read(family);
      expect(summary(read)).toEqual(summary(kernelStateOf(familySpec)));
      const ruleCount = [...read.tables.filter.chains.values()].reduce((n, hashes) => n + hashes.length, 0);
      expect(ruleCount).toBe([...familySpec.tables.filter.chains.values()].reduce((n, c) => n + c.rules.length, 0));
      expect(isEmptyPlan(planFamily(familySpec, read))).toBe(true);
    }
  });

  test('a diff plan on top of the loaded state yields the new state, then nothing is left to do', async () => {
    const before = webAppSnapshot();
    const profiles = new Map(before.profiles);
    profiles.set(
      'WEB',
      profile(
        {
          inbound_rules: [
            { action: 'allow', protocol: 'tcp', dst_ports: [80, 443, '8000:8100'] },
            { action: 'deny', src_net: '2001:db8:dead::/48' },
            { action: 'allow', protocol: 'icmpv6', icmp_type: 128 },
          ],
          outbound_rules: [{ action: 'allow', '!dst_tag': 'APP' }],
        },
        ['WEB', 'APP_7890'],
      ),
    );
    const endpoints = new Map([...before.endpoints].filter(([, e]) => e.ref.endpointId !== 'web1'));
    for (const [k, v] of [
      endpointInput('host1', 'web3', { state: 'active', name: 'caliweb3', profile_ids: ['WEB'], ipv4_nets: ['192.0.2.30/32'], ipv6_nets: ['2001:db8::30/128'] }),
      endpointInput('host2', 'app2', { state: 'active', name: 'caliapp2', profile_ids: ['APP'], ipv4_nets: ['198.51.100.0/28'], ipv6_nets: ['2001:db8:2::/64'] }),
    ]) endpoints.set(k, v);
    const after = compile({ ...before, profiles, endpoints, config: { ...defaultCompilerConfig(), maxIpsetSize: 65536 } });

    for (const [family, familySpec] of [
      [4, after.v4],
      [6, after.v6],
    ] as [4 | 6, FamilySpec][]) {
      const plan = planFamily(familySpec, await kernel.read(family));
      expect(plan.iptablesDeletions.filter).toContain('-X cali-tw-caliweb1');
      expect(plan.ipsetUpdates).toContain('swap ');
      await kernel.apply(family, plan);
      const read = await kernel.read(family);
      expect(summary(read)).toEqual(summary(kernelStateOf(familySpec)));
      expect(isEmptyPlan(planFamily(familySpec, read))).toBe(true);
    }
    const ipsets = (await ns!.exec(['ipset', 'list', '-n'])).stdout.split('\n').filter(Boolean).sort();
    expect(ipsets).toEqual(['cali4-tag-APP', 'cali4-tag-APP_7890', 'cali6-tag-APP', 'cali6-tag-APP_7890']);
  });

  test('hook repair: a foreign rule pushed above our hook and a stale copy are fixed by spec', async () => {
    const spec = compile(webAppSnapshot()).v4;
    const hook = spec.tables.filter.hooks.find((h) => h.builtin === 'FORWARD')!;
    await kernel.restoreIptables(4, `*filter\n-I FORWARD 1 --protocol tcp --jump ACCEPT\n-A FORWARD ${hook.rule}\nCOMMIT\n`);
    let forward = (await kernel.read(4)).tables.filter.builtins.get('FORWARD')!;
    expect(forward.map((r) => r.hash)).toEqual([null, hook.hash, hook.hash]);
    const plan = planFamily(spec, await kernel.read(4));
    expect(plan.iptablesUpdates.filter.match(/^-D FORWARD /gm)).toHaveLength(2);
    await kernel.apply(4, plan);
    forward = (await kernel.read(4)).tables.filter.builtins.get('FORWARD')!;
    expect(forward.map((r) => r.hash)).toEqual([hook.hash, null]);
    expect(isEmptyPlan(planFamily(spec, await kernel.read(4)))).toBe(true);
  });
});
