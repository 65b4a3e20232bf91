/**
 * Docker on the two-host lab (lab.ts): per lab host, a private dockerd running in that host's
 * network namespace and a calico-docker-plugin serving it, plus a busybox image.
 *
 * - dockerd: `nsenter --net=/run/netns/<host> dockerd` (NOT `ip netns exec`, which also makes a
 *   mount namespace and breaks dockerd: netns-lab-notes item 5) with its own data root, exec
 *   root, pidfile and API socket under a temp dir, and no iptables, ip6tables, bridge,
 *   ip-forward or masquerade changes: the host namespace stays the calico-agent's.
 * - Plugin names: every dockerd looks in the one `/run/docker/plugins` directory, so each host's
 *   plugin gets its own name, `calico-<run>-hosta` / `-hostb` (socket `<name>.sock` there), and
 *   networks are created with `--driver <name> --ipam-driver <name>`.
 * - The plugin runs in the ROOT namespace with `--dataplane-netns=<host>` (as the lab's agents
 *   do), because the lab's etcd listens on the root namespace's loopback (netns-lab-notes item
 *   4); its veths are made inside the host namespace, where dockerd moves them into containers.
 * - Addresses: each host's plugin allocates from that host's lab workload block
 *   (`--default-pool-v4`; no Calico pool is in etcd), since the lab routes the blocks between the
 *   hosts statically (there is no BGP here).
 * - Image `bb:latest`: `tar -C <rootfs> -c . | docker import -`, the rootfs holding Debian's
 *   /bin/busybox (busybox-static) and symlinks to it (netns-lab-notes item 7).
 *
 * Invariants: `teardown()` removes every container (so the plugin sees Leave/DeleteEndpoint),
 * stops each dockerd (SIGTERM, then SIGKILL) and plugin, unmounts anything left under the temp
 * dirs, deletes them and the plugin sockets; it never throws and is idempotent, and
 * `startDockerLab` tears down what it built when it fails half-way. The lab itself is the
 * caller's to tear down (after this).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { startPlugin, type PluginProcess } from '../docker/plugin-harness.js';
import type { ExecResult } from '../helpers/netns.js';
import type { HostId, Lab, LabHost } from './lab.js';

export const IMAGE = 'bb:latest';
const BUSYBOX = '/bin/busybox';
const BUSYBOX_APPLETS = ['sh', 'ping', 'ping6', 'ip', 'nc', 'sleep', 'cat', 'nslookup'];
/** Each host's address blocks: the lab's workload blocks of that host (lab.ts PLANS). */
const HOST_POOLS: Record<HostId, { v4: string; v6: string }> = {
  A: { v4: '198.51.100.0/25', v6: '2001:db8:a::/64' },
  B: { v4: '198.51.100.128/25', v6: '2001:db8:b::/64' },
};

const liveDaemons = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of liveDaemons) child.kill('SIGKILL');
});

export interface DockerHost {
  lab: LabHost;
  /** The plugin's name: `--driver`/`--ipam-driver` value. */
  pluginName: string;
  plugin: PluginProcess;
  /** Stops the plugin (SIGTERM) and starts a fresh one with the same flags, as a supervisor would. */
  restartPlugin(): Promise<void>;
  /** `unix://…` of this host's dockerd. */
  dockerHost: string;
  /** Runs the docker CLI against this host's dockerd; throws on failure unless allowFail. */
  docker(args: readonly string[], options?: { allowFail?: boolean; input?: NodeJS.ReadableStream }): Promise<ExecResult>;
  /** dockerd's log so far. */
  daemonLog(): string;
}

export interface DockerLab {
  hosts: Record<HostId, DockerHost>;
  teardown(): Promise<void>;
}

function run(argv: readonly string[], options: { env?: NodeJS.ProcessEnv; input?: NodeJS.ReadableStream } = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
    child.stdin.on('error', () => undefined);
    if (options.input) options.input.pipe(child.stdin);
    else child.stdin.end();
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The docker CLI's environment: ours without anything that would redirect it elsewhere. */
function cliEnv(): NodeJS.ProcessEnv {
  const { DOCKER_HOST: _host, DOCKER_CONTEXT: _context, DOCKER_TLS_VERIFY: _tls, ...env } = process.env;
  return env;
}

/** A rootfs with busybox and its applet symlinks. */
function buildRootfs(dir: string): string {
  const rootfs = join(dir, 'rootfs');
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  copyFileSync(BUSYBOX, join(rootfs, 'bin/busybox'));
  for (const applet of BUSYBOX_APPLETS) symlinkSync('busybox', join(rootfs, 'bin', applet));
  return rootfs;
}

/** Lazily unmounts whatever is still mounted under `dir` (a dockerd that died uncleanly). */
async function unmountUnder(dir: string): Promise<void> {
  const mounts = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1] ?? '')
    .filter((point) => point.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const point of mounts) await run(['umount', '-l', point]).catch(() => undefined);
}

export async function startDockerLab(lab: Lab, options: { log?: (line: string) => void } = {}): Promise<DockerLab> {
  const log = options.log ?? (() => undefined);
  const runId = randomBytes(3).toString('hex');
  // Short paths: containerd's socket lives under the exec root and unix socket paths are limited.
  const dir = mkdtempSync('/tmp/cadk-');
  const daemons: ChildProcess[] = [];
  const plugins: PluginProcess[] = [];
  const hosts: Partial<Record<HostId, DockerHost>> = {};
  let tornDown = false;

  const stopDaemon = async (child: ChildProcess): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  };

  const teardown = async (): Promise<void> => {
    if (tornDown) return;
    tornDown = true;
    await Promise.all(
      Object.values(hosts).map(async (host) => {
        const ids = await host.docker(['ps', '-aq'], { allowFail: true });
        const containers = ids.stdout.split('\n').filter((id) => id.trim() !== '');
        if (containers.length > 0) await host.docker(['rm', '-f', ...containers], { allowFail: true });
      }),
    );
    await Promise.all(daemons.map((child) => stopDaemon(child).catch(() => undefined)));
    await Promise.all(plugins.map((plugin) => plugin.stop().catch(() => undefined)));
    await unmountUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  };

  const startHost = async (id: HostId): Promise<DockerHost> => {
    const labHost = lab.hosts[id];
    const pluginName = `calico-${runId}-host${id.toLowerCase()}`;
    const pluginOptions = {
      socketPath: `/run/docker/plugins/${pluginName}.sock`,
      env: lab.etcd.env,
      args: [
        `--hostname=${labHost.hostname}`,
        `--dataplane-netns=${labHost.netns.name}`,
        `--docker-host=unix://${dir}/${id}/docker.sock`,
        `--default-pool-v4=${HOST_POOLS[id].v4}`,
        `--default-pool-v6=${HOST_POOLS[id].v6}`,
        '--log-level=warn',
      ],
    };
    const plugin = await startPlugin(pluginOptions);
    plugins.push(plugin);

    const root = join(dir, id);
    mkdirSync(root);
    const dockerHost = `unix://${root}/docker.sock`;
    const argv = [
      'nsenter', `--net=/run/netns/${labHost.netns.name}`, '--',
      'dockerd',
      `--data-root=${root}/data`,
      `--exec-root=${root}/exec`,
      `--pidfile=${root}/docker.pid`,
      `--host=${dockerHost}`,
      '--iptables=false',
      '--ip6tables=false',
      '--ip-forward=false',
      '--ip-masq=false',
      '--bridge=none',
    ];
    const daemon = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    daemons.push(daemon);
    liveDaemons.add(daemon);
    daemon.once('exit', () => liveDaemons.delete(daemon));
    let daemonLog = '';
    daemon.stderr!.on('data', (chunk: Buffer) => {
      daemonLog = (daemonLog + chunk.toString()).slice(-200_000);
    });
    const docker: DockerHost['docker'] = async (args, opts = {}) => {
      const result = await run(['docker', '-H', dockerHost, ...args], { env: cliEnv(), ...(opts.input ? { input: opts.input } : {}) });
      if (result.code !== 0 && !opts.allowFail) throw new Error(`docker ${args.join(' ')} (host${id}) exited with ${result.code}: ${result.stderr.trim()}`);
      return result;
    };
    const deadline = Date.now() + 30_000;
    while ((await docker(['version'], { allowFail: true })).code !== 0) {
      if (daemon.exitCode !== null) throw new Error(`dockerd for host${id} exited with ${daemon.exitCode}:\n${daemonLog}`);
      if (Date.now() > deadline) throw new Error(`dockerd for host${id} not up after 30 s:\n${daemonLog}`);
      await sleep(100);
    }
    const host: DockerHost = {
      lab: labHost,
      pluginName,
      plugin,
      async restartPlugin() {
        await host.plugin.stop();
        host.plugin = await startPlugin(pluginOptions);
        plugins.push(host.plugin);
      },
      dockerHost,
      docker,
      daemonLog: () => daemonLog,
    };
    return host;
  };

  try {
    log('starting a dockerd and a calico-docker-plugin per lab host');
    const [a, b] = await Promise.all([startHost('A'), startHost('B')]);
    hosts.A = a;
    hosts.B = b;
    log(`importing ${IMAGE} (busybox) into both dockerds`);
    const rootfs = buildRootfs(dir);
    for (const host of [a, b]) {
      const tar = spawn('tar', ['-C', rootfs, '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
      await host.docker(['import', '-', IMAGE], { input: tar.stdout });
    }
  } catch (error) {
    await teardown();
    throw error;
  }
  return { hosts: hosts as Record<HostId, DockerHost>, teardown };
}
