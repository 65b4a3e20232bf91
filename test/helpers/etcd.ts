/**
 * Test harness: a private etcd (Debian `etcd-server`) per test file, on free loopback ports with
 * a temp data dir, optionally serving TLS with client-certificate authentication. `stop()` kills
 * it and removes the dir; call it from afterAll. A process exit hook also kills any instance left
 * running, so a crashed test never leaves etcd behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface EtcdInstance {
  /** Client URL, e.g. `http://127.0.0.1:40123`. */
  endpoint: string;
  clientPort: number;
  dataDir: string;
  /** Environment for calicoctl / calico-agent child processes pointing at this etcd. */
  env: NodeJS.ProcessEnv;
  /** Stops etcd (SIGKILL when `hard`), keeping the data dir so `restart()` can resume. */
  kill(hard?: boolean): Promise<void>;
  /** Starts etcd again on the same ports and data. */
  restart(): Promise<void>;
  /** SIGSTOP: etcd still accepts connections (the kernel does) but answers nothing; `thaw()` resumes. */
  freeze(): void;
  thaw(): void;
  /** Stops etcd for good and deletes its data. */
  stop(): Promise<void>;
}

/** PEM files for a TLS etcd: its server certificate and the CA that signs client certificates. */
export interface EtcdTls {
  certFile: string;
  keyFile: string;
  caFile: string;
  /** The client certificate the returned `env` presents. */
  clientCertFile: string;
  clientKeyFile: string;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** GET /health, over TLS with the client certificate when `tls` is given. */
function healthy(endpoint: string, tls: EtcdTls | undefined): Promise<boolean> {
  if (!tls) {
    return fetch(`${endpoint}/health`)
      .then(async (res) => res.ok && ((await res.json()) as { health?: string }).health === 'true')
      .catch(() => false);
  }
  return new Promise((resolve) => {
    const req = request(
      `${endpoint}/health`,
      { ca: readFileSync(tls.caFile), cert: readFileSync(tls.clientCertFile), key: readFileSync(tls.clientKeyFile) },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve(res.statusCode === 200 && body.includes('"true"')));
      },
    );
    req.on('error', () => resolve(false));
    req.end();
  });
}

async function waitHealthy(endpoint: string, tls: EtcdTls | undefined, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`etcd exited with ${child.exitCode}:\n${log()}`);
    if (await healthy(endpoint, tls)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`etcd at ${endpoint} did not become healthy:\n${log()}`);
}

export async function startEtcd(options: { tls?: EtcdTls; extraArgs?: readonly string[] } = {}): Promise<EtcdInstance> {
  const { tls } = options;
  const dataDir = await mkdtemp(join(tmpdir(), 'calico-etcd-'));
  const clientPort = await freePort();
  const peerPort = await freePort();
  const endpoint = `${tls ? 'https' : 'http'}://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  let child: ChildProcess | undefined;
  let output = '';

  const launch = async (): Promise<void> => {
    output = '';
    const proc = spawn(
      'etcd',
      [
        '--name', 'test',
        '--data-dir', dataDir,
        '--listen-client-urls', endpoint,
        '--advertise-client-urls', endpoint,
        '--listen-peer-urls', peer,
        '--initial-advertise-peer-urls', peer,
        '--initial-cluster', `test=${peer}`,
        '--log-level', 'error',
        ...(options.extraArgs ?? []),
        ...(tls
          ? ['--cert-file', tls.certFile, '--key-file', tls.keyFile, '--trusted-ca-file', tls.caFile, '--client-cert-auth']
          : []),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    proc.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    running.add(proc);
    proc.on('exit', () => running.delete(proc));
    child = proc;
    await waitHealthy(endpoint, tls, proc, () => output);
  };

  const kill = async (hard = false): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill(hard ? 'SIGKILL' : 'SIGTERM');
    await exited;
  };

  await launch();
  return {
    endpoint,
    clientPort,
    dataDir,
    env: {
      ...process.env,
      ETCD_ENDPOINTS: endpoint,
      ETCD_AUTHORITY: undefined,
      ETCD_SCHEME: undefined,
      ...(tls ? { ETCD_CA_CERT_FILE: tls.caFile, ETCD_CERT_FILE: tls.clientCertFile, ETCD_KEY_FILE: tls.clientKeyFile } : {}),
    },
    kill,
    restart: launch,
    freeze: () => void child?.kill('SIGSTOP'),
    thaw: () => void child?.kill('SIGCONT'),
    stop: async () => {
      await kill(true);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
