/**
 * Address assignment for the Docker IPAM driver, kept entirely in etcd so that plugins on any
 * number of hosts (and a restarted plugin) share one view.
 *
 * Layout: `/calico/v1/ipam/v<4|6>/pool/<cidr with ->` are the Calico IP pools (calicoctl's, JSON
 * `{"cidr": …, "disabled"?: …}`); `/calico/v1/ipam/v<4|6>/assignment/<ip>` marks one assigned
 * address (JSON `{"host": …, "pool": …}`).
 *
 * Invariants:
 * - An address is handed out only by the etcd transaction that CREATES its assignment key
 *   (compare create_revision == 0), so two concurrent allocators — in one process or on two
 *   hosts — can never return the same address; the loser moves on to the next free address.
 * - Candidates are scanned from the bottom of each range upwards, skipping addresses seen
 *   assigned; IPv4 ranges of /30 and wider skip their network and broadcast addresses, IPv6
 *   ranges of /126 and wider skip the subnet-router anycast (all-zero host) address.
 * - Releasing deletes the key; releasing an address that is not assigned is a no-op.
 */
import type { Etcd3 } from 'etcd3';
import { PluginRequestError } from './http-server.js';
import { toDatastoreError } from '../../src/datastore/client.js';
import type { EtcdSettings } from '../../src/datastore/index.js';
import {
  formatIp,
  ipAssignmentKey,
  ipAssignmentPrefix,
  parseCidr,
  parseJson,
  poolPrefix,
  poolSchema,
  type IpVersion,
} from '../../src/model/index.js';

/** An IPAM request the driver must refuse; the message goes back to Docker (and the user). */
export class AddressError extends PluginRequestError {}

/** Upper bound of lost creation races in one allocation before giving up (contention, not size). */
const MAX_LOST_RACES = 1000;

interface Range {
  version: IpVersion;
  first: bigint;
  last: bigint;
}

function toBigInt(bytes: readonly number[]): bigint {
  return bytes.reduce((acc, b) => (acc << 8n) | BigInt(b), 0n);
}

function fromBigInt(version: IpVersion, value: bigint): string {
  const bytes: number[] = [];
  for (let i = 0; i < (version === 4 ? 4 : 16); i++) {
    bytes.unshift(Number(value & 0xffn));
    value >>= 8n;
  }
  return formatIp(version, bytes);
}

/** The assignable addresses of a network CIDR. */
function usableRange(cidr: string): Range {
  const parsed = parseCidr(cidr);
  if (!parsed) throw new AddressError(`invalid pool ${JSON.stringify(cidr)}`);
  const bits = parsed.version === 4 ? 32 : 128;
  const hostBits = BigInt(bits - parsed.prefix);
  const base = (toBigInt(parsed.bytes) >> hostBits) << hostBits;
  const top = base + (1n << hostBits) - 1n;
  if (parsed.version === 4 && parsed.prefix <= 30) return { version: 4, first: base + 1n, last: top - 1n };
  if (parsed.version === 6 && parsed.prefix <= 126) return { version: 6, first: base + 1n, last: top };
  return { version: parsed.version, first: base, last: top };
}

/** True when bare address `ip` lies inside network `cidr`. */
export function cidrContains(cidr: string, ip: string): boolean {
  const net = parseCidr(cidr);
  const addr = parseCidr(ip);
  if (!net || !addr || net.version !== addr.version) return false;
  const hostBits = BigInt((net.version === 4 ? 32 : 128) - net.prefix);
  return toBigInt(net.bytes) >> hostBits === toBigInt(addr.bytes) >> hostBits;
}

export class AddressAllocator {
  constructor(
    private readonly client: Etcd3,
    private readonly settings: EtcdSettings,
    private readonly hostname: string,
    private readonly defaultPools: Record<IpVersion, string | undefined>,
  ) {}

  /** Enabled Calico pools of a family from etcd; the configured default when there are none. */
  async pools(version: IpVersion): Promise<string[]> {
    const kvs = await this.etcd(() => this.client.getAll().prefix(poolPrefix(version)).strings());
    const pools: string[] = [];
    for (const value of Object.values(kvs)) {
      const json = parseJson(value);
      const pool = json.ok ? poolSchema.safeParse(json.value) : undefined;
      if (pool?.success && !pool.data.disabled && parseCidr(pool.data.cidr)?.version === version) pools.push(pool.data.cidr);
    }
    if (pools.length > 0) return pools;
    const fallback = this.defaultPools[version];
    return fallback === undefined ? [] : [fallback];
  }

  /**
   * Assigns `requested` (a bare address inside one of `ranges`), or else the lowest free
   * address of the first range that has one. `poolId` is recorded with the assignment.
   */
  async assign(version: IpVersion, ranges: readonly string[], poolId: string, requested?: string): Promise<string> {
    if (requested !== undefined) {
      if (!ranges.some((cidr) => cidrContains(cidr, requested))) {
        throw new AddressError(`address ${requested} is not in pool ${ranges.join(', ') || poolId}`);
      }
      if (!(await this.create(version, requested, poolId))) throw new AddressError(`address ${requested} is already assigned`);
      return requested;
    }
    const taken = new Set(await this.assigned(version));
    let lostRaces = 0;
    for (const cidr of ranges) {
      const range = usableRange(cidr);
      for (let n = range.first; n <= range.last; n++) {
        const ip = fromBigInt(version, n);
        if (taken.has(ip)) continue;
        if (await this.create(version, ip, poolId)) return ip;
        taken.add(ip);
        if (++lostRaces > MAX_LOST_RACES) throw new AddressError(`gave up allocating from ${poolId}: too many concurrent allocations`);
      }
    }
    throw new AddressError(`no free IPv${version} address in ${ranges.join(', ')}`);
  }

  /** Frees an address; false when it was not assigned. */
  async release(version: IpVersion, ip: string): Promise<boolean> {
    const response = await this.etcd(() => this.client.delete().key(ipAssignmentKey(version, ip)).exec());
    return Number(response.deleted) > 0;
  }

  /** Every assigned address of a family (any host). */
  async assigned(version: IpVersion): Promise<string[]> {
    const prefix = ipAssignmentPrefix(version);
    const keys = await this.etcd(() => this.client.getAll().prefix(prefix).keys());
    return keys.map((key) => key.slice(prefix.length));
  }

  /** Creates the assignment key unless it exists; true when this call created it. */
  private async create(version: IpVersion, ip: string, poolId: string): Promise<boolean> {
    const key = ipAssignmentKey(version, ip);
    const value = JSON.stringify({ host: this.hostname, pool: poolId });
    const response = await this.etcd(() =>
      this.client.kv.txn({
        compare: [{ key: Buffer.from(key), target: 'Create', result: 'Equal', create_revision: '0' }],
        success: [{ request_put: { key: Buffer.from(key), value: Buffer.from(value) } }],
        failure: [],
      }),
    );
    return response.succeeded;
  }

  private async etcd<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw toDatastoreError(error, this.settings);
    }
  }
}
