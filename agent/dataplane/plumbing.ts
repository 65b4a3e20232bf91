/**
 * Per-interface kernel plumbing for local workload endpoints, as Felix does it (reference §3.7):
 * anti-spoofing and proxy sysctls, a host route per endpoint address, and an IPv6 proxy-NDP entry
 * for the endpoint's gateway; plus the host-wide forwarding sysctls.
 *
 * Invariants:
 * - Only interfaces whose name starts with the workload prefix are ever touched; routes and proxy
 *   entries on other interfaces, and kernel-made routes (`proto kernel`), are never read as ours.
 * - Idempotent: the kernel state is read first (`ip -j link/route/neigh`, `sysctl`) and only the
 *   differences are written, so a re-apply of an unchanged spec runs read commands only.
 * - Interfaces are never created or deleted here. An endpoint whose interface is missing or
 *   administratively down is skipped and reported; the caller retries later.
 * - Routes of inactive or removed endpoints are deleted; their sysctls are left as they are.
 * - All commands go through the runner, so sysctls (per network namespace) land in the dataplane
 *   namespace.
 */
import type { EndpointInput } from '../../compiler/types.js';
import { runChecked } from './command-runner.js';
import type { CommandRunner } from './types.js';

/** What one local endpoint interface should have. */
export interface InterfacePlumbing {
  name: string;
  /** Canonical IPv4 CIDRs routed to the interface (usually /32). */
  ipv4Nets: readonly string[];
  /** Canonical IPv6 CIDRs routed to the interface (usually /128). */
  ipv6Nets: readonly string[];
  /** The endpoint's IPv6 gateway, answered by proxy NDP on the interface. */
  ipv6Gateway?: string;
}

export type SkipReason = 'missing' | 'down' | 'not-workload-interface';

export interface PlumbingReport {
  /** Active endpoints whose interface could not be plumbed now. */
  skipped: readonly { name: string; reason: SkipReason }[];
  /** Sysctl assignments written (`key=value`). */
  sysctlWrites: readonly string[];
  /** `ip -batch` lines run (route/neigh changes). */
  ipChanges: readonly string[];
}

/** Desired plumbing for active local endpoints; inactive endpoints get none (routes removed). */
export function desiredPlumbing(localEndpoints: ReadonlyMap<string, EndpointInput>): Map<string, InterfacePlumbing> {
  const desired = new Map<string, InterfacePlumbing>();
  for (const { endpoint } of localEndpoints.values()) {
    if (endpoint.state !== 'active') continue;
    desired.set(endpoint.name, {
      name: endpoint.name,
      ipv4Nets: endpoint.ipv4_nets,
      ipv6Nets: endpoint.ipv6_nets,
      ...(endpoint.ipv6_gateway ? { ipv6Gateway: endpoint.ipv6_gateway } : {}),
    });
  }
  return desired;
}

/** `192.0.2.1/32` → `192.0.2.1` (the form `ip -j route` prints host routes in). */
function routeKey(dst: string, dev: string): string {
  const bare = dst.endsWith('/32') ? dst.slice(0, -3) : dst.endsWith('/128') ? dst.slice(0, -4) : dst;
  return `${bare.toLowerCase()} ${dev}`;
}

function interfaceSysctls(plumbing: InterfacePlumbing): [string, string][] {
  const name = plumbing.name;
  const settings: [string, string][] = [
    [`net.ipv4.conf.${name}.rp_filter`, '1'],
    [`net.ipv4.conf.${name}.route_localnet`, '1'],
    [`net.ipv4.conf.${name}.proxy_arp`, '1'],
    [`net.ipv4.neigh.${name}.proxy_delay`, '0'],
  ];
  if (plumbing.ipv6Nets.length > 0 || plumbing.ipv6Gateway) {
    settings.push([`net.ipv6.conf.${name}.proxy_ndp`, '1'], [`net.ipv6.conf.${name}.forwarding`, '1']);
  }
  return settings;
}

const GLOBAL_SYSCTLS: [string, string][] = [
  ['net.ipv4.ip_forward', '1'],
  ['net.ipv6.conf.all.forwarding', '1'],
  ['net.ipv4.conf.default.rp_filter', '1'],
];

interface LinkJson {
  ifname: string;
  flags?: string[];
}
interface RouteJson {
  dst: string;
  dev?: string;
  protocol?: string;
  type?: string;
}
interface NeighJson {
  dst: string;
  dev?: string;
}

export interface Plumbing {
  /** Host-wide: forwarding on, default rp_filter strict. Throws if `all.rp_filter` is loose (2). */
  applyGlobal(): Promise<readonly string[]>;
  /** Brings workload-interface sysctls, routes and proxy entries to `desired`. */
  reconcile(desired: ReadonlyMap<string, InterfacePlumbing>): Promise<PlumbingReport>;
}

export function createPlumbing(options: { runner: CommandRunner; interfacePrefix: string }): Plumbing {
  const { runner, interfacePrefix } = options;
  const ours = (dev: string | undefined): dev is string => dev !== undefined && dev.startsWith(interfacePrefix);

  async function ipJson<T>(args: readonly string[]): Promise<T[]> {
    const result = await runChecked(runner, ['ip', '-j', ...args]);
    const text = result.stdout.trim();
    return text === '' ? [] : (JSON.parse(text) as T[]);
  }

  /** Current values of `keys`; a key the kernel does not have is absent from the map. */
  async function readSysctls(keys: readonly string[]): Promise<Map<string, string>> {
    const values = new Map<string, string>();
    if (keys.length === 0) return values;
    const result = await runner.run(['sysctl', '-e', ...keys]);
    for (const line of result.stdout.split('\n')) {
      const at = line.indexOf(' = ');
      if (at > 0) values.set(line.slice(0, at), line.slice(at + 3).trim());
    }
    return values;
  }

  /** Writes the settings that differ from the kernel; returns the `key=value`s written. */
  async function syncSysctls(settings: readonly [string, string][]): Promise<string[]> {
    const current = await readSysctls(settings.map(([key]) => key));
    const writes = settings.filter(([key, value]) => current.get(key) !== value).map(([key, value]) => `${key}=${value}`);
    if (writes.length > 0) await runChecked(runner, ['sysctl', '-q', '-w', ...writes]);
    return writes;
  }

  return {
    async applyGlobal() {
      const rpFilter = (await readSysctls(['net.ipv4.conf.all.rp_filter'])).get('net.ipv4.conf.all.rp_filter');
      if (rpFilter !== undefined && Number(rpFilter) > 1) {
        throw new Error(
          `net.ipv4.conf.all.rp_filter is ${rpFilter} (loose): workload source addresses cannot be enforced; set it to 0 or 1`,
        );
      }
      return syncSysctls(GLOBAL_SYSCTLS);
    },

    async reconcile(desired) {
      const [links, routes4, routes6, proxies] = await Promise.all([
        ipJson<LinkJson>(['link', 'show']),
        ipJson<RouteJson>(['-4', 'route', 'show']),
        ipJson<RouteJson>(['-6', 'route', 'show']),
        ipJson<NeighJson>(['-6', 'neigh', 'show', 'proxy']),
      ]);
      const linkUp = new Map(links.map((link) => [link.ifname, link.flags?.includes('UP') ?? false]));

      const skipped: { name: string; reason: SkipReason }[] = [];
      const ready: InterfacePlumbing[] = [];
      for (const plumbing of desired.values()) {
        if (!ours(plumbing.name)) skipped.push({ name: plumbing.name, reason: 'not-workload-interface' });
        else if (!linkUp.has(plumbing.name)) skipped.push({ name: plumbing.name, reason: 'missing' });
        else if (!linkUp.get(plumbing.name)) skipped.push({ name: plumbing.name, reason: 'down' });
        else ready.push(plumbing);
      }

      const sysctlWrites = await syncSysctls(ready.flatMap(interfaceSysctls));

      // Routes and proxy entries: desired ones on ready interfaces; those of skipped interfaces
      // that are still wanted are left alone (the kernel drops them with the link anyway).
      const wantedRoutes = new Map<string, string>(); // key → dst to write
      const wantedProxies = new Map<string, string>();
      const stillWanted = new Set<string>();
      const readyNames = new Set(ready.map((plumbing) => plumbing.name));
      for (const plumbing of desired.values()) {
        const isReady = readyNames.has(plumbing.name);
        for (const net of [...plumbing.ipv4Nets, ...plumbing.ipv6Nets]) {
          const key = routeKey(net, plumbing.name);
          if (isReady) wantedRoutes.set(key, net);
          else stillWanted.add(key);
        }
        if (plumbing.ipv6Gateway) {
          const key = routeKey(plumbing.ipv6Gateway, plumbing.name);
          if (isReady) wantedProxies.set(key, plumbing.ipv6Gateway);
          else stillWanted.add(key);
        }
      }

      const ipChanges: string[] = [];
      const presentRoutes = new Set<string>();
      for (const route of [...routes4, ...routes6]) {
        if (!ours(route.dev) || route.protocol === 'kernel' || (route.type !== undefined && route.type !== 'unicast')) continue;
        const key = routeKey(route.dst, route.dev);
        presentRoutes.add(key);
        if (!wantedRoutes.has(key) && !stillWanted.has(key)) ipChanges.push(`route del ${route.dst} dev ${route.dev}`);
      }
      for (const [key, net] of wantedRoutes) {
        if (!presentRoutes.has(key)) ipChanges.push(`route replace ${net} dev ${key.slice(key.indexOf(' ') + 1)}`);
      }
      const presentProxies = new Set<string>();
      for (const proxy of proxies) {
        if (!ours(proxy.dev)) continue;
        const key = routeKey(proxy.dst, proxy.dev);
        presentProxies.add(key);
        if (!wantedProxies.has(key) && !stillWanted.has(key)) ipChanges.push(`neigh del proxy ${proxy.dst} dev ${proxy.dev}`);
      }
      for (const [key, gateway] of wantedProxies) {
        if (!presentProxies.has(key)) ipChanges.push(`neigh add proxy ${gateway} dev ${key.slice(key.indexOf(' ') + 1)}`);
      }
      if (ipChanges.length > 0) await runChecked(runner, ['ip', '-batch', '-'], { input: `${ipChanges.join('\n')}\n` });

      return { skipped, sysctlWrites, ipChanges };
    },
  };
}
