/**
 * etcd v3 client construction (gRPC, the `etcd3` package), error translation, and the EtcdKv
 * (kv.ts) over such a client.
 *
 * `createEtcdClient` builds an etcd3 `Etcd3` from `EtcdSettings`. Its fault handling is
 * deliberately short by default (bounded dial and call deadlines, no hidden retries): callers
 * that want to retry (the agent's syncer) do so themselves with their own backoff, and a CLI
 * facing a dead etcd says so within a few seconds.
 *
 * `toDatastoreError` maps whatever etcd3/gRPC threw into the typed errors of errors.ts, naming
 * the endpoints so the message alone tells the operator what to check.
 *
 * `rangeDecoded` is etcd's Range through the same client (its hosts, auth, deadlines and error
 * casting) with the response decoded by range-response.ts: the agent's list. It reaches into
 * etcd3 1.1 (the connection pool behind `kv`, the generated KV client class, to which it adds one
 * method); if those change, it throws at its first call, and the syncer tests fail.
 */
import { readFileSync } from 'node:fs';
import { Etcd3, GRPCGenericError, isRecoverableError, type IOptions, type IRangeRequest } from 'etcd3';
import { noop } from 'cockatiel';
import {
  DatastoreConfigError,
  DatastoreError,
  DatastoreRequestError,
  DatastoreUnavailableError,
} from './errors.js';
import type { EtcdKv, KeyValue, ResponseOp } from './kv.js';
import { decodeRangeResponse, type DecodedRange } from './range-response.js';
import type { EtcdSettings } from './settings.js';

export interface EtcdClientOptions {
  /** Time allowed to establish a connection (ms). Default 3000. */
  dialTimeoutMs?: number;
  /** Deadline of each unary call (ms); streams (watches) have none. Default 10000. */
  callTimeoutMs?: number;
  /** Largest message the client accepts (a list page, a watch response). Default 64 MiB. */
  maxReceiveBytes?: number;
}

/**
 * gRPC's default (4 MiB) is below what a page of ordinary values can reach; 64 MiB is far above
 * etcd's default request limit (1.5 MiB), so any value etcd accepted by default can be listed
 * and watched. The agent's list pages adapt their size to stay well below it (syncer.ts).
 */
export const DEFAULT_MAX_RECEIVE_BYTES = 64 * 1024 * 1024;

/**
 * HTTP/2 flow-control window of the connection and each stream (the default is 64 KiB): room for
 * a whole list page (syncer.ts: up to ~8 MiB), so that the page requested while the agent decodes
 * the current one need not wait for our acknowledgements, which a busy event loop sends late.
 * Measured on 100k keys with 100 ms of work per page: 2.59 s mean against 2.75 s with 64 KiB.
 */
const FLOW_CONTROL_WINDOW_BYTES = 16 * 1024 * 1024;

function readTlsFile(path: string, variable: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new DatastoreConfigError(`${variable}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

export function createEtcdClient(settings: EtcdSettings, options: EtcdClientOptions = {}): Etcd3 {
  const callTimeoutMs = options.callTimeoutMs ?? 10_000;
  const etcdOptions: IOptions = {
    hosts: settings.endpoints,
    dialTimeout: options.dialTimeoutMs ?? 3000,
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
    faultHandling: { host: () => noop, global: noop },
    grpcOptions: {
      'grpc.max_receive_message_length': options.maxReceiveBytes ?? DEFAULT_MAX_RECEIVE_BYTES,
      'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW_BYTES,
    },
  };
  if (settings.auth) etcdOptions.auth = { username: settings.auth.username, password: settings.auth.password };
  const { caCertFile, certFile, keyFile } = settings.tls;
  if (caCertFile || certFile) {
    etcdOptions.credentials = {
      // grpc-js falls back to the system roots when no CA is given.
      rootCertificate: caCertFile ? readTlsFile(caCertFile, 'ETCD_CA_CERT_FILE') : (undefined as unknown as Buffer),
      ...(certFile ? { certChain: readTlsFile(certFile, 'ETCD_CERT_FILE') } : {}),
      ...(keyFile ? { privateKey: readTlsFile(keyFile, 'ETCD_KEY_FILE') } : {}),
    };
  }
  return new Etcd3(etcdOptions);
}

/** One-line summary of an etcd3/gRPC failure, without the gRPC boilerplate. */
function shortReason(error: Error): string {
  const text = (error.message.split('\n')[0] ?? '').replace(/^\d+ [A-Z_]+: /, '');
  const lastError = /Last error: (?:\w*Error: )?(.+?)(?:\.? Resolution note:.*)?$/.exec(text);
  return (lastError?.[1] ?? text).trim() || error.name;
}

/** Translates an error thrown by etcd3 into a typed DatastoreError (idempotent). */
export function toDatastoreError(error: unknown, settings: EtcdSettings): DatastoreError {
  if (error instanceof DatastoreError) return error;
  const where = settings.endpoints.join(', ');
  if (!(error instanceof Error)) return new DatastoreRequestError(`etcd at ${where} failed: ${String(error)}`);
  if (isRecoverableError(error) || /deadline|unavailable|ECONNREFUSED|No connection/i.test(error.message)) {
    return new DatastoreUnavailableError(
      `Cannot reach etcd at ${where} (${shortReason(error)}). Is etcd running? Check ETCD_ENDPOINTS and the TLS settings.`,
      { cause: error },
    );
  }
  const kind = error instanceof GRPCGenericError ? 'rejected the request' : 'failed';
  return new DatastoreRequestError(`etcd at ${where} ${kind}: ${shortReason(error)}`, { cause: error });
}

const keyValue = (kv: { key: Buffer; value: Buffer; mod_revision: string | number }): KeyValue => ({
  key: kv.key,
  value: kv.value,
  mod_revision: String(kv.mod_revision),
});

/** The EtcdKv of an etcd3 client; `close()` closes the client. */
export function etcd3Kv(client: Etcd3, settings: EtcdSettings): EtcdKv {
  return {
    async range(request) {
      try {
        const response = await client.kv.range(request);
        return { header: { revision: String(response.header.revision) }, kvs: response.kvs.map(keyValue) };
      } catch (error) {
        throw toDatastoreError(error, settings);
      }
    },
    async txn(request) {
      try {
        const response = await client.kv.txn({ ...request, failure: [] });
        const responses = response.responses.map((op): ResponseOp => {
          if (op.response_range) return { response_range: { kvs: op.response_range.kvs.map(keyValue) } };
          if (op.response_delete_range) return { response_delete_range: { deleted: String(op.response_delete_range.deleted) } };
          return { response_put: {} };
        });
        return { header: { revision: String(response.header.revision) }, succeeded: response.succeeded, responses };
      } catch (error) {
        throw toDatastoreError(error, settings);
      }
    },
    close: () => client.close(),
  };
}

/**
 * What `rangeDecoded` uses of etcd3 1.1's connection pool (`Etcd3#kv`'s `client`): `exec` runs a
 * method of a service's generated gRPC client with the pool's host choice, auth metadata
 * (re-authenticating once on an expired token), call options and error casting; `withConnection`
 * hands over that client.
 */
interface EtcdPool {
  exec(service: 'KV', method: string, payload: unknown): Promise<unknown>;
  withConnection(service: 'KV', use: (connection: { client: object }) => Promise<unknown>): Promise<unknown>;
}

/** The method `rangeDecoded` adds to etcd3's generated KV client class. */
const DECODED_RANGE_METHOD = 'rangeDecoded';

interface GrpcUnaryClient {
  makeUnaryRequest(method: string, serialize: (value: unknown) => Buffer, deserialize: (bytes: Buffer) => unknown, ...rest: unknown[]): unknown;
}

/** Pools whose KV client class is known to have the method: their calls go straight to `exec`. */
const readyPools = new WeakSet<EtcdPool>();

function poolOf(client: Etcd3): EtcdPool {
  const pool = (client.kv as unknown as { client?: Partial<EtcdPool> }).client;
  if (typeof pool?.exec !== 'function' || typeof pool.withConnection !== 'function') {
    throw new Error('the etcd3 client no longer has the connection pool rangeDecoded relies on (etcd3 1.1.x)');
  }
  return pool as EtcdPool;
}

/**
 * etcd's Range with the response decoded by `decodeRangeResponse` (range-response.ts) instead of
 * protobuf.js: the agent's list, ~100k keys at start-up. Errors are etcd3's, as from
 * `client.kv.range`.
 */
export async function rangeDecoded(client: Etcd3, request: IRangeRequest): Promise<DecodedRange> {
  const pool = poolOf(client);
  if (!readyPools.has(pool)) {
    await pool.withConnection('KV', async ({ client: kv }) => {
      const prototype = Object.getPrototypeOf(kv) as Record<string, unknown>;
      if (typeof prototype[DECODED_RANGE_METHOD] === 'function') return;
      const range = (kv.constructor as { service?: { Range?: { path: string; requestSerialize: (value: unknown) => Buffer } } }).service?.Range;
      if (range === undefined) throw new Error('the etcd3 KV client has no Range method definition (etcd3 1.1.x expected)');
      // The signature etcd3's pool calls a method with: (request, metadata, options, callback).
      prototype[DECODED_RANGE_METHOD] = function (this: GrpcUnaryClient, ...args: unknown[]) {
        return this.makeUnaryRequest(range.path, range.requestSerialize, decodeRangeResponse, ...args);
      };
    });
    readyPools.add(pool);
  }
  return (await pool.exec('KV', DECODED_RANGE_METHOD, request)) as DecodedRange;
}
