/**
 * EtcdKv (kv.ts) over etcd's JSON gateway (`POST /v3/kv/range`, `/v3/kv/txn`; part of etcd's v3
 * API, served on the client port), with node:http/https alone. This is calicoctl's path to etcd:
 * it loads in a few milliseconds, where the gRPC client and its protobuf definitions take
 * hundreds. It never watches; the agent keeps the gRPC client.
 *
 * Invariants:
 * - Bytes travel base64-encoded, as the gateway expects; enum names are the proto's (`MOD`).
 * - An endpoint that cannot be reached is skipped for the next one; when none answers, a
 *   DatastoreUnavailableError worded like the gRPC client's (client.ts). An answer with an
 *   error status is a DatastoreRequestError carrying etcd's message (unavailable: retried on the
 *   next endpoint). Each call has a deadline.
 * - One keep-alive connection serves the calls of a command; `close()` ends it.
 * - With etcd authentication (settings.auth) the first call fetches a token
 *   (`/v3/auth/authenticate`); a call refused for an expired token authenticates again, once.
 * - When every endpoint answers but its gateway cannot reach etcd's own gRPC service (etcd with
 *   `--client-cert-auth` and a server certificate not valid for client use, etcd issue 15755),
 *   the error is a GatewayUnusableError, so that the caller can take the gRPC path instead.
 */
import { readFileSync } from 'node:fs';
import type * as Http from 'node:http';
import type * as Https from 'node:https';
import { createRequire } from 'node:module';
import { DatastoreConfigError, DatastoreRequestError, DatastoreUnavailableError } from './errors.js';
import type { Compare, EtcdKv, KeyValue, RangeRequest, RequestOp, ResponseOp } from './kv.js';
import type { EtcdSettings } from './settings.js';

export interface GatewayKvOptions {
  /** Deadline of each call, connection included (ms). Default 10000. */
  callTimeoutMs?: number;
}

/** gRPC status codes etcd puts in the gateway's error answers that mean "try elsewhere/later". */
const UNAVAILABLE_CODES = new Set([4 /* DEADLINE_EXCEEDED */, 14 /* UNAVAILABLE */]);

type Json = Record<string, unknown>;

const b64 = (bytes: Buffer | undefined): string | undefined => bytes?.toString('base64');
const bytes = (text: unknown): Buffer => Buffer.from(typeof text === 'string' ? text : '', 'base64');

function rangeJson(request: RangeRequest): Json {
  return {
    key: b64(request.key),
    range_end: b64(request.range_end),
    keys_only: request.keys_only,
    limit: request.limit,
    sort_target: request.sort_target?.toUpperCase(),
    sort_order: request.sort_order?.toUpperCase(),
  };
}

function compareJson(compare: Compare): Json {
  return {
    key: b64(compare.key),
    range_end: b64(compare.range_end),
    target: compare.target.toUpperCase(),
    result: compare.result.toUpperCase(),
    version: compare.version,
    mod_revision: compare.mod_revision,
  };
}

function opJson(op: RequestOp): Json {
  if ('request_range' in op) return { request_range: rangeJson(op.request_range) };
  if ('request_put' in op) return { request_put: { key: b64(op.request_put.key), value: b64(op.request_put.value) } };
  return { request_delete_range: { key: b64(op.request_delete_range.key), range_end: b64(op.request_delete_range.range_end) } };
}

function keyValues(kvs: unknown): KeyValue[] {
  if (!Array.isArray(kvs)) return [];
  return kvs.map((kv: Json) => ({ key: bytes(kv.key), value: bytes(kv.value), mod_revision: String(kv.mod_revision ?? '0') }));
}

function revisionOf(answer: Json): string {
  return String((answer.header as Json | undefined)?.revision ?? '0');
}

function readTls(path: string | undefined, variable: string): Buffer | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path);
  } catch (error) {
    throw new DatastoreConfigError(`${variable}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** A failure to reach one endpoint (the next may answer). */
class Unreachable extends Error {}

/** Every endpoint answered, each with "unavailable": the gateway cannot serve, gRPC may. */
export class GatewayUnusableError extends DatastoreUnavailableError {}

export function gatewayKv(settings: EtcdSettings, options: GatewayKvOptions = {}): EtcdKv {
  const callTimeoutMs = options.callTimeoutMs ?? 10_000;
  const where = settings.endpoints.join(', ');
  const { caCertFile, certFile, keyFile } = settings.tls;
  const tls = { ca: readTls(caCertFile, 'ETCD_CA_CERT_FILE'), cert: readTls(certFile, 'ETCD_CERT_FILE'), key: readTls(keyFile, 'ETCD_KEY_FILE') };
  // node:http and node:https are loaded at the first call (~10 ms each at start-up), https only
  // for an https endpoint: a command that fails its checks never pays for them.
  const load = createRequire(import.meta.url);
  let http: { module: typeof Http; agent: Http.Agent } | undefined;
  let https: { module: typeof Https; agent: Https.Agent } | undefined;
  const client = (secure: boolean): { module: typeof Http | typeof Https; agent: Http.Agent } => {
    if (secure) {
      if (https === undefined) {
        const module = load('node:https') as typeof Https;
        https = { module, agent: new module.Agent({ keepAlive: true, maxSockets: 4, ...tls }) };
      }
      return https;
    }
    if (http === undefined) {
      const module = load('node:http') as typeof Http;
      http = { module, agent: new module.Agent({ keepAlive: true, maxSockets: 4 }) };
    }
    return http;
  };
  /** The endpoint that answered last: tried first. */
  let preferred = 0;

  function post(endpoint: string, path: string, body: string, token?: string): Promise<{ status: number; answer: Json }> {
    const url = new URL(path, endpoint);
    const secure = url.protocol === 'https:';
    return new Promise((resolve, reject) => {
      const { module, agent } = client(secure);
      const request = module.request(
        url,
        {
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...(token !== undefined ? { authorization: token } : {}) },
          timeout: callTimeoutMs,
        },
        (response: Http.IncomingMessage) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('error', (error) => reject(new Unreachable(error.message)));
          response.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            try {
              resolve({ status: response.statusCode ?? 0, answer: JSON.parse(text) as Json });
            } catch {
              reject(new DatastoreRequestError(`etcd at ${endpoint} answered ${path} with something other than JSON (HTTP ${response.statusCode})`));
            }
          });
        },
      );
      const deadline = setTimeout(() => request.destroy(new Unreachable(`no answer within ${callTimeoutMs} ms`)), callTimeoutMs);
      request.on('close', () => clearTimeout(deadline));
      request.on('timeout', () => request.destroy(new Unreachable(`no answer within ${callTimeoutMs} ms`)));
      request.on('error', (error: NodeJS.ErrnoException) => reject(error instanceof Unreachable ? error : new Unreachable(error.code ?? error.message)));
      request.end(body);
    });
  }

  /** The auth token (etcd authentication on): fetched at the first call, again when etcd says it expired. */
  let token: string | undefined;
  async function authenticate(endpoint: string): Promise<string> {
    const { username, password } = settings.auth!;
    const { status, answer } = await post(endpoint, '/v3/auth/authenticate', JSON.stringify({ name: username, password }));
    if (status === 200 && typeof answer.token === 'string') return answer.token;
    if (UNAVAILABLE_CODES.has(Number(answer.code))) throw new Unreachable(String(answer.message ?? `HTTP ${status}`));
    throw new DatastoreRequestError(`etcd at ${where} refused user ${JSON.stringify(username)} (ETCD_USERNAME/ETCD_PASSWORD): ${String(answer.message ?? answer.error ?? `HTTP ${status}`)}`);
  }

  async function call(path: string, payload: Json): Promise<Json> {
    const body = JSON.stringify(payload);
    let lastReason = '';
    let answeredUnavailable = 0;
    for (let i = 0; i < settings.endpoints.length; i++) {
      const index = (preferred + i) % settings.endpoints.length;
      const endpoint = settings.endpoints[index]!;
      try {
        if (settings.auth && token === undefined) token = await authenticate(endpoint);
        let { status, answer } = await post(endpoint, path, body, token);
        if (settings.auth && status !== 200 && /invalid auth token/.test(String(answer.message ?? answer.error))) {
          // Simple tokens expire (etcd --auth-token-ttl): authenticate again, once.
          token = await authenticate(endpoint);
          ({ status, answer } = await post(endpoint, path, body, token));
        }
        if (status === 200) {
          preferred = index;
          return answer;
        }
        const message = String(answer.message ?? answer.error ?? `HTTP ${status}`);
        if (UNAVAILABLE_CODES.has(Number(answer.code))) {
          lastReason = message;
          answeredUnavailable++;
          continue;
        }
        throw new DatastoreRequestError(`etcd at ${where} rejected the request: ${message}`);
      } catch (error) {
        if (!(error instanceof Unreachable)) throw error;
        lastReason = error.message;
      }
    }
    const message = `Cannot reach etcd at ${where} (${lastReason}). Is etcd running? Check ETCD_ENDPOINTS and the TLS settings.`;
    throw answeredUnavailable === settings.endpoints.length ? new GatewayUnusableError(message) : new DatastoreUnavailableError(message);
  }

  return {
    async range(request) {
      const answer = await call('/v3/kv/range', rangeJson(request));
      return { header: { revision: revisionOf(answer) }, kvs: keyValues(answer.kvs) };
    },
    async txn(request) {
      const answer = await call('/v3/kv/txn', { compare: request.compare.map(compareJson), success: request.success.map(opJson), failure: [] });
      const responses = (Array.isArray(answer.responses) ? answer.responses : []).map((op: Json): ResponseOp => {
        const range = op.response_range as Json | undefined;
        if (range) return { response_range: { kvs: keyValues(range.kvs) } };
        const deleted = op.response_delete_range as Json | undefined;
        if (deleted) return { response_delete_range: { deleted: String(deleted.deleted ?? '0') } };
        return { response_put: {} };
      });
      return { header: { revision: revisionOf(answer) }, succeeded: answer.succeeded === true, responses };
    },
    close() {
      http?.agent.destroy();
      https?.agent.destroy();
    },
  };
}
