/**
 * Test harness for calico-docker-plugin: runs the built plugin (dist/agent/docker-plugin/main.js)
 * as a child process and talks to its unix socket the way dockerd 20.10 does (docker-deploy.md
 * §3.3): POST, `Accept: application/vnd.docker.plugins.v1.2+json`, NO Content-Type, and an empty
 * body for the calls that have none.
 *
 * Invariants: every plugin started here is killed by `stop()` (SIGTERM, then SIGKILL) and by a
 * process 'exit' hook if a test crashes; `stop()` removes the socket file if the plugin left it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { request } from 'node:http';
import { builtPath } from '../helpers/run-node.js';

export const PLUGIN = builtPath('dist/agent/docker-plugin/main.js');

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export interface PluginReply {
  status: number;
  /** The parsed JSON reply (undefined when not JSON). */
  body: Record<string, unknown>;
  raw: string;
}

/**
 * One plugin call. `body` undefined sends an empty body (Activate, GetCapabilities,
 * GetDefaultAddressSpaces); an object is sent as compact JSON. No Content-Type header.
 */
export function pluginCall(socketPath: string, method: string, body?: unknown): Promise<PluginReply> {
  const payload = body === undefined ? '' : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        path: `/${method}`,
        method: 'POST',
        headers: { Accept: 'application/vnd.docker.plugins.v1.2+json', 'Content-Length': Buffer.byteLength(payload) },
        timeout: 20_000,
      },
      (res) => {
        let raw = '';
        res.on('data', (chunk: Buffer) => (raw += chunk.toString()));
        res.on('end', () => {
          let parsed: Record<string, unknown> = {};
          try {
            parsed = JSON.parse(raw) as Record<string, unknown>;
          } catch {
            // leave empty; `raw` shows what came back
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, raw });
        });
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`${method}: no reply within 20 s`)));
    req.end(payload);
  });
}

export interface PluginProcess {
  socketPath: string;
  process: ChildProcess;
  /** stderr so far (pino JSON lines and any one-line failure). */
  log(): string;
  /** SIGTERM (then SIGKILL after 3 s); resolves once exited. Idempotent. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface StartPluginOptions {
  socketPath: string;
  /** Environment (etcd settings etc.). */
  env: NodeJS.ProcessEnv;
  args?: readonly string[];
}

/** Starts the plugin and waits until its socket answers Plugin.Activate. */
export async function startPlugin(options: StartPluginOptions): Promise<PluginProcess> {
  const child = spawn(process.execPath, [PLUGIN, `--socket=${options.socketPath}`, ...(options.args ?? [])], {
    env: options.env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-500_000);
  });
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(options.socketPath, { force: true });
  };
  const plugin: PluginProcess = { socketPath: options.socketPath, process: child, log: () => stderr, stop };
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`plugin exited with ${child.exitCode}:\n${stderr}`);
    const reply = await pluginCall(options.socketPath, 'Plugin.Activate').catch(() => undefined);
    if (reply?.status === 200) return plugin;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`plugin did not answer on ${options.socketPath} within 15 s:\n${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
