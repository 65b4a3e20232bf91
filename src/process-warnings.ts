/**
 * Node process warnings for our entry points: calicoctl keeps its one-line errors and the agent
 * its JSON-lines log, so Node's default "(node:123) Warning: …" printing is replaced by a
 * reporter the entry point supplies.
 *
 * DEP0123 is dropped: gRPC passes the endpoint's host as the TLS server name, and Node deprecates
 * that when the host is an IP literal (`https://127.0.0.1:2379`). Certificate verification is
 * unaffected (the IP is checked against the certificate's subjectAltName).
 */
const IGNORED_WARNINGS: ReadonlySet<string> = new Set(['DEP0123']);

export function routeProcessWarnings(report: (warning: Error & { code?: string }) => void): void {
  process.removeAllListeners('warning');
  process.on('warning', (warning: Error & { code?: string }) => {
    if (warning.code !== undefined && IGNORED_WARNINGS.has(warning.code)) return;
    report(warning);
  });
}
