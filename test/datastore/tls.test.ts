/**
 * etcd over TLS with client-certificate authentication, end to end: a throwaway CA and server and
 * client certificates made with openssl, a real etcd requiring client certificates, and calicoctl
 * and calico-agent configured only through ETCD_ENDPOINTS / ETCD_CA_CERT_FILE / ETCD_CERT_FILE /
 * ETCD_KEY_FILE.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startEtcd, type EtcdInstance, type EtcdTls } from '../helpers/etcd.js';
import { createNetns, type Netns } from '../helpers/netns.js';
import { calicoctl, words } from '../cli/run-calicoctl.js';
import { runNode } from '../helpers/run-node.js';

let dir: string;
let tls: EtcdTls;
let etcd: EtcdInstance;
/** A second CA that signed nothing etcd trusts. */
let strangerCa: string;

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

/** A CA-signed certificate `<name>.pem` / `<name>-key.pem` with the given extensions. */
function issue(ca: string, name: string, subject: string, extensions: string): void {
  writeFileSync(join(dir, `${name}.ext`), extensions);
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}-key.pem`, '-subj', subject, '-out', `${name}.csr`);
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}-key.pem`, '-CAcreateserial',
    '-days', '1', '-extfile', `${name}.ext`, '-out', `${name}.pem`);
}

function makeCa(name: string): void {
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}-key.pem`, '-subj', `/CN=${name}`,
    '-days', '1', '-out', `${name}.pem`);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'calico-tls-'));
  makeCa('ca');
  makeCa('stranger');
  issue('ca', 'server', '/CN=etcd', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  issue('ca', 'client', '/CN=calico', 'extendedKeyUsage=clientAuth\n');
  issue('stranger', 'rogue', '/CN=rogue', 'extendedKeyUsage=clientAuth\n');
  strangerCa = join(dir, 'stranger.pem');
  tls = {
    certFile: join(dir, 'server.pem'),
    keyFile: join(dir, 'server-key.pem'),
    caFile: join(dir, 'ca.pem'),
    clientCertFile: join(dir, 'client.pem'),
    clientKeyFile: join(dir, 'client-key.pem'),
  };
  etcd = await startEtcd({ tls });
});

afterAll(async () => {
  await etcd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('calicoctl over TLS', () => {
  test('profile commands work with the CA and client certificate from the environment', async () => {
    expect(etcd.endpoint).toMatch(/^https:/);
    expect(await calicoctl(etcd.env, words('profile add WEB'))).toEqual({ code: 0, stdout: 'Created profile WEB\n', stderr: '' });
    const show = await calicoctl(etcd.env, words('profile WEB rule show'));
    expect(show).toEqual({ code: 0, stdout: 'Inbound rules:\n   1 allow from tag WEB\nOutbound rules:\n   1 allow\n', stderr: '' });
  });

  test.each([
    ['no client certificate', { ETCD_CERT_FILE: undefined, ETCD_KEY_FILE: undefined }],
    ['a client certificate from an untrusted CA', { ETCD_CERT_FILE: 'rogue.pem', ETCD_KEY_FILE: 'rogue-key.pem' }],
    ['a CA that did not sign the server', { ETCD_CA_CERT_FILE: 'stranger' }],
  ])('%s: one line on stderr, exit 1, nothing written', async (_name, overrides) => {
    const env: NodeJS.ProcessEnv = { ...etcd.env };
    for (const [key, value] of Object.entries(overrides)) {
      if (value === undefined) delete env[key];
      else env[key] = value === 'stranger' ? strangerCa : join(dir, value);
    }
    const r = await calicoctl(env, words('profile add BLOCKED'));
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect((await calicoctl(etcd.env, words('profile show'))).stdout).not.toContain('BLOCKED');
  });

  test('a missing certificate file is named in one line', async () => {
    const r = await calicoctl({ ...etcd.env, ETCD_CERT_FILE: join(dir, 'nope.pem') }, words('profile show'));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ETCD_CERT_FILE');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  });
});

describe('calico-agent over TLS', () => {
  let ns: Netns;
  beforeAll(async () => {
    ns = await createNetns('tls');
  });
  afterAll(async () => {
    await ns?.destroy();
  });

  test('--once lists etcd over TLS and programs the namespace', async () => {
    const r = await runNode('dist/agent/main.js', ['--once', '--hostname', 'tls-host', '--dataplane-netns', ns.name, '--iptables-backend', 'nft', '--health-listen', 'none', '--log-level', 'warn'], etcd.env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const saved = await ns.exec(['iptables-save', '-t', 'filter']);
    expect(saved.stdout).toContain(':cali-FORWARD');
  });
});
