/**
 * The Diagnostics the compiler reports (what was ignored or fails closed), built in one place so
 * the calculation graph and `compile()` word them identically, and their canonical order.
 */
import type { IpVersion } from '../src/model/index.js';
import type { Diagnostic } from './types.js';

export function prefixlessEndpoint(key: string, iface: string, prefix: string): Diagnostic {
  return { kind: 'invalid-endpoint', subject: key, message: `interface ${iface} does not start with the workload prefix ${prefix}; endpoint ignored` };
}

export function duplicateInterface(loser: string, iface: string, winner: string): Diagnostic {
  return { kind: 'invalid-endpoint', subject: loser, message: `interface ${iface} is already used by ${winner}; endpoint ignored` };
}

export function duplicateAddress(loser: string, address: string, owner: string): Diagnostic {
  return { kind: 'invalid-endpoint', subject: loser, message: `address ${address} is already used by ${owner}; endpoint refused` };
}

export function missingProfile(id: string, endpoints: number): Diagnostic {
  return {
    kind: 'missing-profile',
    subject: id,
    message: `profile ${id} is missing or has invalid rules; ${endpoints} local endpoint(s) drop traffic in that direction`,
  };
}

export function ipsetTooLarge(setName: string, tag: string, family: IpVersion, members: number, maxIpsetSize: number, maxelem: number): Diagnostic {
  return {
    kind: 'ipset-too-large',
    subject: setName,
    message: `tag ${tag} has ${members} IPv${family} members, more than maxIpsetSize ${maxIpsetSize}; maxelem raised to ${maxelem}`,
  };
}

/** Sorted by kind, subject, message. */
export function sortDiagnostics(diagnostics: Diagnostic[]): Diagnostic[] {
  return diagnostics.sort((a, b) => {
    for (const field of ['kind', 'subject', 'message'] as const) {
      if (a[field] !== b[field]) return a[field] < b[field] ? -1 : 1;
    }
    return 0;
  });
}
