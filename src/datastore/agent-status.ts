/**
 * Reads what the agents publish about themselves: each host's dataplane status
 * (`/calico/agent/v1/dataplane/<host>`) and whether its agent is alive (its leased Felix status
 * key `/calico/felix/v1/host/<host>/status` still exists: the lease lapses one TTL after the agent
 * stops reporting). Used by `calicoctl status` and `--wait`.
 *
 * The published statuses and the newest policy revision come from one transaction (one etcd
 * revision); liveness is read right after, in transactions of up to 128 hosts.
 */
import { DATAPLANE_STATUS_PREFIX, hostStatusKey, parseDataplaneStatus, V1_PREFIX, type DataplaneStatus } from '../model/index.js';
import { prefixEnd, type EtcdKv, type RequestOp } from './kv.js';

export interface HostAgentStatus {
  host: string;
  /** The agent's leased status key exists. */
  alive: boolean;
  /** Undefined when the published value is not a dataplane status. */
  dataplane: DataplaneStatus | undefined;
}

export interface AgentStatusSnapshot {
  /** The etcd revision the snapshot was read at. */
  revision: number;
  /** The revision of the newest `/calico/v1/` key (what a dataplane must reflect to be current). */
  policyRevision: number;
  hosts: HostAgentStatus[];
}

/** etcd's default limit of operations in one transaction (--max-txn-ops). */
const TXN_OPS = 128;

const rangeOf = (prefix: string): RequestOp => ({ request_range: { key: Buffer.from(prefix), range_end: prefixEnd(prefix) } });

const newestPolicyKey: RequestOp = {
  request_range: { key: Buffer.from(V1_PREFIX), range_end: prefixEnd(V1_PREFIX), keys_only: true, limit: 1, sort_target: 'Mod', sort_order: 'Descend' },
};

/** Every host's published status, its agent's liveness, and (`calicoctl status`) the policy revision. */
export async function readAgentStatuses(kv: EtcdKv): Promise<AgentStatusSnapshot> {
  return readStatuses(kv, true);
}

/**
 * The hosts alone (`--wait`, which polls: the newest-policy-key lookup sorts every key under
 * `/calico/v1/` on the server, too much to repeat every few ms).
 */
export async function readHostStatuses(kv: EtcdKv): Promise<HostAgentStatus[]> {
  return (await readStatuses(kv, false)).hosts;
}

async function readStatuses(kv: EtcdKv, withPolicyRevision: boolean): Promise<AgentStatusSnapshot> {
  const first = await kv.txn({ compare: [], success: [rangeOf(DATAPLANE_STATUS_PREFIX), ...(withPolicyRevision ? [newestPolicyKey] : [])] });
  const revision = Number(first.header.revision);
  const published = (first.responses[0]?.response_range?.kvs ?? []).map((kv) => ({
    host: kv.key.toString().slice(DATAPLANE_STATUS_PREFIX.length),
    dataplane: parseDataplaneStatus(kv.value.toString()),
  }));
  const newest = first.responses[1]?.response_range?.kvs[0];
  const policyRevision = newest ? Number(newest.mod_revision) : 0;

  // Liveness of each host's agent.
  const alive = new Set<string>();
  for (let at = 0; at < published.length; at += TXN_OPS) {
    const batch = published.slice(at, at + TXN_OPS);
    const answer = await kv.txn({
      compare: [],
      success: batch.map(({ host }): RequestOp => ({ request_range: { key: Buffer.from(hostStatusKey(host)), keys_only: true } })),
    });
    batch.forEach(({ host }, i) => {
      if ((answer.responses[i]?.response_range?.kvs.length ?? 0) > 0) alive.add(host);
    });
  }
  const hosts = published.map(({ host, dataplane }) => ({ host, alive: alive.has(host), dataplane })).sort((a, b) => (a.host < b.host ? -1 : 1));
  return { revision, policyRevision, hosts };
}
