/**
 * The agent's loopback HTTP listener: `GET /liveness`, `/readiness` (200 or 503, Felix-style),
 * `/metrics` (Prometheus text) and `/status` (JSON for operators and tests).
 *
 * Invariant: handlers only read agent state; they never trigger work.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { ListenAddress } from './config.js';
import type { Logger } from './logger.js';

export interface HealthSource {
  live(): boolean;
  ready(): boolean;
  status(): unknown;
}

export interface HttpServerHandle {
  /** The bound address (the port is the real one when 0 was asked for). */
  address: ListenAddress;
  close(): Promise<void>;
}

export async function startHttpServer(options: {
  listen: ListenAddress;
  registry: Registry;
  health: HealthSource;
  log: Logger;
}): Promise<HttpServerHandle> {
  const { registry, health, log } = options;
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (code: number, body: string, type = 'text/plain; charset=utf-8'): void => {
      res.writeHead(code, { 'content-type': type });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed\n');
    switch (path) {
      case '/liveness': {
        const ok = health.live();
        return send(ok ? 200 : 503, ok ? 'live\n' : 'not live\n');
      }
      case '/readiness': {
        const ok = health.ready();
        return send(ok ? 200 : 503, ok ? 'ready\n' : 'not ready\n');
      }
      case '/status':
        return send(200, `${JSON.stringify(health.status())}\n`, 'application/json');
      case '/metrics':
        registry
          .metrics()
          .then((text) => send(200, text, registry.contentType))
          .catch((err: unknown) => {
            log.warn({ err }, 'metrics collection failed');
            send(500, 'metrics collection failed\n');
          });
        return;
      default:
        return send(404, 'not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.listen.port, options.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  log.info({ host: bound.address, port: bound.port }, 'health and metrics listening');
  return {
    address: { host: bound.address, port: bound.port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
