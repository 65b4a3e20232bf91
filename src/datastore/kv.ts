/**
 * The two etcd v3 calls the datastore layer makes, Range and Txn, in the shapes of etcd's own API
 * (`etcdserverpb`; its JSON gateway spells the same field names), keys and values as bytes.
 *
 * Implementations: etcd3-kv.ts (gRPC through the `etcd3` client; the agent and the Docker plugin,
 * which also watch) and gateway-kv.ts (etcd's JSON gateway over node:http; calicoctl, which must
 * start fast and never watches).
 *
 * Invariants: every failure is thrown as a DatastoreError (errors.ts) naming the endpoints;
 * fields etcd leaves out of an answer (proto3 omits defaults) are filled in: `kvs` [],
 * `succeeded` false, `deleted` '0'.
 */

export interface KeyValue {
  key: Buffer;
  value: Buffer;
  mod_revision: string;
}

export interface RangeRequest {
  key: Buffer;
  range_end?: Buffer;
  keys_only?: boolean;
  limit?: number;
  /** With `sort_order`: e.g. the key last modified first (`Mod`, `Descend`). */
  sort_target?: 'Key' | 'Mod';
  sort_order?: 'Ascend' | 'Descend';
}

export interface RangeResponse {
  header: { revision: string };
  kvs: KeyValue[];
}

/** A compare of a txn: the key's (or every key in the range's) version or mod revision. */
export interface Compare {
  key: Buffer;
  range_end?: Buffer;
  target: 'Version' | 'Mod';
  result: 'Equal' | 'Less';
  version?: string;
  mod_revision?: string;
}

export type RequestOp =
  | { request_range: RangeRequest }
  | { request_put: { key: Buffer; value: Buffer } }
  | { request_delete_range: { key: Buffer; range_end?: Buffer } };

export interface ResponseOp {
  response_range?: { kvs: KeyValue[] };
  response_put?: object;
  response_delete_range?: { deleted: string };
}

export interface TxnRequest {
  compare: Compare[];
  success: RequestOp[];
}

export interface TxnResponse {
  header: { revision: string };
  succeeded: boolean;
  responses: ResponseOp[];
}

export interface EtcdKv {
  range(request: RangeRequest): Promise<RangeResponse>;
  /** Runs `success` if every compare holds; the failure branch is always empty. */
  txn(request: TxnRequest): Promise<TxnResponse>;
  close(): void;
}

/** The first key after every key that starts with `prefix` (etcd range_end for a prefix). */
export function prefixEnd(prefix: string): Buffer {
  const bytes = Buffer.from(prefix);
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i]! < 0xff) {
      const end = Buffer.from(bytes.subarray(0, i + 1));
      end[i] = end[i]! + 1;
      return end;
    }
  }
  return Buffer.from([0]);
}

/**
 * `primary`, until it throws `isUnusable`: from then on (that call included) the EtcdKv that
 * `fallback` makes. A call that failed that way did nothing, so repeating it is safe.
 */
export function withFallback(primary: EtcdKv, isUnusable: (error: unknown) => boolean, fallback: () => Promise<EtcdKv>): EtcdKv {
  let current: EtcdKv | Promise<EtcdKv> = primary;
  const use = async <T>(call: (kv: EtcdKv) => Promise<T>): Promise<T> => {
    const kv = await current;
    try {
      return await call(kv);
    } catch (error) {
      if (kv !== primary || !isUnusable(error)) throw error;
      if (current === primary) {
        primary.close();
        current = fallback();
      }
      return call(await current);
    }
  };
  return {
    range: (request) => use((kv) => kv.range(request)),
    txn: (request) => use((kv) => kv.txn(request)),
    close: () => void Promise.resolve(current).then((kv) => kv.close(), () => undefined),
  };
}
