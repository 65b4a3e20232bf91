/**
 * The libnetwork IpamDriver half of the plugin (docker-deploy.md §1.4), Calico-style.
 *
 * Pools and their ids (self-describing, so a restarted plugin understands every PoolID Docker
 * still holds — Docker does not replay pools to a restarted plugin, §0.3):
 * - no `--subnet`: PoolID `CalicoPoolIPv4` / `CalicoPoolIPv6`, reported Pool `0.0.0.0/0` / `::/0`;
 *   addresses come from the enabled Calico pools in etcd, or the configured default pool while
 *   etcd has none of that family.
 * - `--subnet X`: X must lie within one of those pools (a sub-range of a Calico pool, never an
 *   arbitrary new range); PoolID and Pool are X itself and addresses come from X only.
 * Every pool carries the gateway hint `com.docker.network.gateway: 0.0.0.0/0` (`::/0`), so Docker
 * allocates no gateway address: containers route via 169.254.1.1 (the network driver's Join).
 * `--ip-range` (SubPool) and `--gateway` (a gateway RequestAddress) are refused.
 *
 * Invariants: no state in memory (etcd holds the assignments, see address-allocator.ts);
 * identical RequestPool calls return identical replies; errors travel in `Error`.
 */
import {
  canonicalCidr,
  canonicalIp,
  cidrVersion,
  maskedCidr,
  parseCidr,
  type IpVersion,
} from '../../src/model/index.js';
import { AddressError, cidrContains, type AddressAllocator } from './address-allocator.js';
import type { Handler } from './http-server.js';
import { booleanField, idField, objectField, stringField, type Body } from './request-fields.js';

export const CALICO_POOL_ID: Readonly<Record<IpVersion, string>> = { 4: 'CalicoPoolIPv4', 6: 'CalicoPoolIPv6' };
const ANY_NETWORK: Readonly<Record<IpVersion, string>> = { 4: '0.0.0.0/0', 6: '::/0' };
const GATEWAY_OPTION = 'com.docker.network.gateway';
const REQUEST_ADDRESS_TYPE = 'RequestAddressType';
export const LOCAL_ADDRESS_SPACE = 'CalicoLocalAddressSpace';
export const GLOBAL_ADDRESS_SPACE = 'CalicoGlobalAddressSpace';

const versionOf = (v6: boolean): IpVersion => (v6 ? 6 : 4);

function noPoolError(version: IpVersion): AddressError {
  return new AddressError(
    `no IPv${version} Calico pool: add one under /calico/v1/ipam/v${version}/pool/ or start the plugin with --default-pool-v${version}`,
  );
}

/** The version and address ranges a PoolID stands for. */
async function rangesOf(allocator: AddressAllocator, poolId: string): Promise<{ version: IpVersion; ranges: string[] }> {
  for (const version of [4, 6] as const) {
    if (poolId === CALICO_POOL_ID[version]) {
      const ranges = await allocator.pools(version);
      if (ranges.length === 0) throw noPoolError(version);
      return { version, ranges };
    }
  }
  const cidr = canonicalCidr(poolId);
  if (cidr === undefined || cidr !== poolId || !poolId.includes('/')) throw new AddressError(`unknown pool ${JSON.stringify(poolId)}`);
  return { version: cidrVersion(cidr), ranges: [cidr] };
}

async function requestPool(allocator: AddressAllocator, body: Body): Promise<unknown> {
  const version = versionOf(booleanField(body, 'V6'));
  const requested = stringField(body, 'Pool');
  if (stringField(body, 'SubPool') !== '') throw new AddressError('--ip-range is not supported by Calico IPAM');
  const data = { [GATEWAY_OPTION]: ANY_NETWORK[version] };
  const pools = await allocator.pools(version);
  if (pools.length === 0) throw noPoolError(version);
  if (requested === '') return { PoolID: CALICO_POOL_ID[version], Pool: ANY_NETWORK[version], Data: data };

  const subnet = canonicalCidr(requested);
  if (subnet === undefined || !requested.includes('/') || maskedCidr(subnet) !== subnet || cidrVersion(subnet) !== version) {
    throw new AddressError(`--subnet ${requested} is not an IPv${version} network CIDR`);
  }
  const prefix = parseCidr(subnet)!.prefix;
  const inside = pools.some((pool) => parseCidr(pool)!.prefix <= prefix && cidrContains(pool, subnet.split('/')[0]!));
  if (!inside) throw new AddressError(`--subnet ${subnet} is not within a Calico pool (${pools.join(', ')})`);
  return { PoolID: subnet, Pool: subnet, Data: data };
}

async function requestAddress(allocator: AddressAllocator, body: Body): Promise<unknown> {
  const poolId = idField(body, 'PoolID');
  if (objectField(body, 'Options')[REQUEST_ADDRESS_TYPE] === GATEWAY_OPTION) {
    throw new AddressError('Calico networks route through 169.254.1.1: --gateway is not supported');
  }
  const { version, ranges } = await rangesOf(allocator, poolId);
  const text = stringField(body, 'Address');
  let requested: string | undefined;
  if (text !== '') {
    requested = canonicalIp(text.split('/')[0]!);
    if (requested === undefined || cidrVersion(requested) !== version) throw new AddressError(`${JSON.stringify(text)} is not an IPv${version} address`);
  }
  const ip = await allocator.assign(version, ranges, poolId, requested);
  return { Address: `${ip}/${version === 4 ? 32 : 128}`, Data: {} };
}

async function releaseAddress(allocator: AddressAllocator, body: Body): Promise<unknown> {
  idField(body, 'PoolID');
  const text = stringField(body, 'Address');
  const ip = canonicalIp(text);
  if (ip === undefined) throw new AddressError(`${JSON.stringify(text)} is not an IP address`);
  // The gateway hint (0.0.0.0 / ::) is "released" when a network is removed: nothing to do.
  if (ip === '0.0.0.0' || ip === '::') return {};
  await allocator.release(cidrVersion(ip), ip);
  return {};
}

export function ipamRoutes(allocator: AddressAllocator): Map<string, Handler> {
  return new Map<string, Handler>([
    ['/IpamDriver.GetCapabilities', async () => ({ RequiresMACAddress: false, RequiresRequestReplay: true })],
    [
      '/IpamDriver.GetDefaultAddressSpaces',
      async () => ({ LocalDefaultAddressSpace: LOCAL_ADDRESS_SPACE, GlobalDefaultAddressSpace: GLOBAL_ADDRESS_SPACE }),
    ],
    ['/IpamDriver.RequestPool', (body) => requestPool(allocator, body)],
    [
      '/IpamDriver.ReleasePool',
      async (body) => {
        idField(body, 'PoolID');
        return {};
      },
    ],
    ['/IpamDriver.RequestAddress', (body) => requestAddress(allocator, body)],
    ['/IpamDriver.ReleaseAddress', (body) => releaseAddress(allocator, body)],
  ]);
}

