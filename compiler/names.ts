/**
 * Every kernel object name and name prefix the project uses lives here (chains ≤ 28 characters,
 * ipsets ≤ 31). The agent recognises what it owns only through `isOwnedChain` / `isOwnedIpset`.
 */
import { sha256Hex, uniquelyShorten } from '../src/model/index.js';

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

// ---- Name builders (everything below is derived from the prefixes above) -------------------

/** Global chains, one per hook. */
export const INPUT_CHAIN = `${CHAIN_PREFIX}INPUT`;
export const FORWARD_CHAIN = `${CHAIN_PREFIX}FORWARD`;
export const OUTPUT_CHAIN = `${CHAIN_PREFIX}OUTPUT`;
/** IPv6 raw-table anti-spoofing chain (rpfilter). */
export const PREROUTING_CHAIN = `${CHAIN_PREFIX}PREROUTING`;

/** Dispatch roots: interface → endpoint chain (goto). Sub-levels append `-<chars>`. */
export const FROM_WORKLOAD_DISPATCH = `${CHAIN_PREFIX}from-wl-dispatch`;
export const TO_WORKLOAD_DISPATCH = `${CHAIN_PREFIX}to-wl-dispatch`;

const PROFILE_INBOUND_PREFIX = `${CHAIN_PREFIX}pri-`;
const PROFILE_OUTBOUND_PREFIX = `${CHAIN_PREFIX}pro-`;
const TO_WORKLOAD_PREFIX = `${CHAIN_PREFIX}tw-`;
const FROM_WORKLOAD_PREFIX = `${CHAIN_PREFIX}fw-`;
const TAG_SET_INFIX = 'tag-';
const TEMP_SET_INFIX = 'tmp-';

export type Direction = 'inbound' | 'outbound';

/** `cali-pri-<id>` / `cali-pro-<id>`; long ids are shortened collision-free (Felix §3.10). */
export function profileChainName(profileId: string, direction: Direction): string {
  const prefix = direction === 'inbound' ? PROFILE_INBOUND_PREFIX : PROFILE_OUTBOUND_PREFIX;
  return prefix + uniquelyShorten(profileId, MAX_CHAIN_NAME_LENGTH - prefix.length);
}

/** `cali-tw-<iface>` (to workload: inbound policy) / `cali-fw-<iface>` (from workload: outbound). */
export function endpointChainName(iface: string, direction: Direction): string {
  const prefix = direction === 'inbound' ? TO_WORKLOAD_PREFIX : FROM_WORKLOAD_PREFIX;
  return prefix + uniquelyShorten(iface, MAX_CHAIN_NAME_LENGTH - prefix.length);
}

/** Sub-dispatch chain for interfaces whose name continues the workload prefix with `chars`. */
export function dispatchChildName(root: string, chars: string): string {
  return `${root}-${chars}`;
}

/** Longest `chars` a dispatch child name can carry. */
export const MAX_DISPATCH_CHARS = MAX_CHAIN_NAME_LENGTH - FROM_WORKLOAD_DISPATCH.length - 1;

export function ipsetPrefix(family: 4 | 6): string {
  return family === 4 ? IPSET_PREFIX_V4 : IPSET_PREFIX_V6;
}

/** The tag's ipset: `cali4-tag-<tag>` / `cali6-tag-<tag>` (≤ 31 characters). */
export function tagIpsetName(tag: string, family: 4 | 6): string {
  const prefix = ipsetPrefix(family) + TAG_SET_INFIX;
  return prefix + uniquelyShorten(tag, MAX_IPSET_NAME_LENGTH - prefix.length);
}

/** Scratch set used to rebuild a set atomically (create, fill, swap, destroy). */
export function tempIpsetName(setName: string): string {
  const family = setName.startsWith(IPSET_PREFIX_V6) ? 6 : 4;
  const prefix = ipsetPrefix(family) + TEMP_SET_INFIX;
  return prefix + sha256Hex(setName, MAX_IPSET_NAME_LENGTH - prefix.length);
}

/** The comment fragment that fingerprints a rule. */
export function hashComment(hash: string): string {
  return `-m comment --comment "${HASH_COMMENT_PREFIX}${hash}"`;
}
