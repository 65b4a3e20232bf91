/**
 * Test helper: asks `calicoctl policy trace -o json` for the verdict of each probe a lab test
 * makes with real packets, so the tests prove that the trace agrees with the kernel. Addresses
 * are given (not workload names) so each probe traces exactly the packet that was sent.
 */
import type { Family, Lab, LabWorkload } from './lab.js';

export interface TracedProbe {
  from: LabWorkload;
  to: LabWorkload;
  /** `ping` = ICMP echo request; a number = a TCP connection to that port. */
  probe: 'ping' | number;
  family: Family;
  /** What the packet got (or, where the test has already proven that, what it must get). */
  allowed: boolean;
  label: string;
}

/** The probes whose traced verdict differs from `allowed`, one line each (empty: all agree). */
export async function traceDisagreements(lab: Lab, probes: readonly TracedProbe[]): Promise<string[]> {
  const lines = await Promise.all(
    probes.map(async (p) => {
      const address = (w: LabWorkload): string => {
        const ip = p.family === 6 ? w.ipv6 : w.ipv4;
        if (ip === undefined) throw new Error(`trace checks: ${w.name} has no IPv${p.family} address`);
        return ip;
      };
      const protocol =
        p.probe === 'ping' ? ['--protocol', p.family === 6 ? 'icmpv6' : 'icmp'] : ['--protocol', 'tcp', '--port', String(p.probe)];
      const result = await lab.calicoctl(['policy', 'trace', '--from', address(p.from), '--to', address(p.to), ...protocol, '-o', 'json']);
      const report = JSON.parse(result.stdout) as { verdict: 'allow' | 'deny'; reason: string };
      const traced = report.verdict === 'allow';
      return traced === p.allowed ? undefined : `${p.label}: packet ${p.allowed ? 'allowed' : 'denied'}, trace says ${report.verdict} (${report.reason})`;
    }),
  );
  return lines.filter((line): line is string => line !== undefined);
}
