/**
 * Every kernel object name and name prefix the project uses lives here (chains ≤ 28 characters,
 * ipsets ≤ 31). The agent recognises what it owns only through `isOwnedChain` / `isOwnedIpset`.
 */

export const CHAIN_PREFIX = 'cali-';
export const IPSET_PREFIX_V4 = 'cali4-';
export const IPSET_PREFIX_V6 = 'cali6-';
/** Prefix of the hash comment carried by every rule we write (`-m comment --comment "cali:<id>"`). */
export const HASH_COMMENT_PREFIX = 'cali:';

export const MAX_CHAIN_NAME_LENGTH = 28;
export const MAX_IPSET_NAME_LENGTH = 31;

export function isOwnedChain(name: string): boolean {
  return name.startsWith(CHAIN_PREFIX);
}

export function isOwnedIpset(name: string): boolean {
  return name.startsWith(IPSET_PREFIX_V4) || name.startsWith(IPSET_PREFIX_V6);
}
