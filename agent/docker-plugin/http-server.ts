/**
 * The plugin's transport: HTTP/1.1 on a unix socket, as Docker's plugin client speaks it
 * (docker-deploy.md §1.1): every call a POST to `/<Interface>.<Method>` whose body is JSON
 * (possibly empty) sent WITHOUT a Content-Type, so the body is parsed whatever the headers say.
 *
 * Invariants:
 * - A handler's result is the 200 reply; a thrown error is a 500 whose JSON carries the message
 *   in `Err` for NetworkDriver (and Plugin) calls and in `Error` (plus `Err`, see errorBody) for
 *   IpamDriver calls (§1.2). An unknown method is a 404 (libnetwork: "not
 *   implemented"); a non-POST is a 405; a body that is not JSON is a 400.
 * - The socket file is ours while we listen: a stale file (nobody accepting) is replaced, a live
 *   one is refused; `close()` removes it.
 */
import { mkdirSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { DatastoreError } from '../../src/datastore/index.js';

/** A request the plugin refuses; the message is sent to Docker, which shows it to the user. */
export class PluginRequestError extends Error {}

export type Handler = (body: Record<string, unknown>) => Promise<unknown>;

/** Handlers by path, e.g. `/NetworkDriver.Join`. */
export type Routes = ReadonlyMap<string, Handler>;

export interface PluginServer {
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 1 << 20;

/**
 * The error body for a call. IPAM replies carry `Error` (ipams/remote/api) and ALSO `Err`: on a
 * non-200 reply Docker's plugin client reads only `Err`, and without it shows the user the raw
 * JSON (`IpamDriver.RequestPool: {"Error":"…"}`) instead of the message (seen on 20.10).
 */
function errorBody(path: string, message: string): Record<string, string> {
  return path.startsWith('/IpamDriver.') ? { Error: message, Err: message } : { Err: message };
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/vnd.docker.plugins.v1.2+json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new PluginRequestError('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseBody(text: string): Record<string, unknown> {
  if (text.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new PluginRequestError('request body is not JSON');
  }
  if (parsed === null) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new PluginRequestError('request body is not a JSON object');
  return parsed as Record<string, unknown>;
}

/** True when something accepts connections on the unix socket `path`. */
function socketIsLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

export async function startPluginServer(socketPath: string, routes: Routes, log: Logger): Promise<PluginServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]!;
    if (req.method !== 'POST') return reply(res, 405, errorBody(path, `${req.method} not allowed: plugin calls are POSTs`));
    const handler = routes.get(path);
    void (async () => {
      let body: Record<string, unknown>;
      try {
        body = parseBody(await readBody(req));
      } catch (error) {
        log.warn({ path, err: (error as Error).message }, 'bad request');
        return reply(res, 400, errorBody(path, (error as Error).message));
      }
      if (!handler) {
        log.debug({ path }, 'unknown method');
        return reply(res, 404, errorBody(path, `${path.slice(1)} is not implemented`));
      }
      const started = performance.now();
      try {
        const result = await handler(body);
        log.debug({ path, request: body, reply: result, ms: Math.round(performance.now() - started) }, 'call');
        reply(res, 200, result);
      } catch (error) {
        const message = (error as Error).message.split('\n')[0] ?? 'failed';
        // Refusals and datastore trouble are operational (warn); anything else is a bug (error).
        const expected = error instanceof PluginRequestError || error instanceof DatastoreError;
        log[expected ? 'warn' : 'error']({ path, request: body, err: message }, 'call refused');
        reply(res, 500, errorBody(path, message));
      }
    })();
  });

  mkdirSync(dirname(socketPath), { recursive: true });
  if (await socketIsLive(socketPath)) throw new PluginRequestError(`${socketPath} is in use by another running plugin`);
  try {
    unlinkSync(socketPath);
  } catch {
    // no stale socket
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  log.info({ socket: socketPath }, 'plugin listening');

  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        try {
          unlinkSync(socketPath);
        } catch {
          // already gone
        }
      }),
  };
}
