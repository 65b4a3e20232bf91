/**
 * IP addresses and CIDRs: parsing and canonical text forms (pure, no Node APIs).
 *
 * Invariants:
 * - Canonical IPv4 is dotted quad; canonical IPv6 is RFC 5952 (lower case, longest zero run as
 *   `::`, no leading zeros).
 * - A canonical CIDR keeps its host bits (`10.0.0.1/24` stays so), as Calico v1 stored them;
 *   a bare address gets a host prefix (`/32`, `/128`).
 * - IPv4 CIDRs accept netaddr's short forms when a prefix is given (`10/8` → `10.0.0.0/8`).
 * - IPv4 octets are decimal without leading zeros (`010` is refused rather than guessed at).
 */

export type IpVersion = 4 | 6;

export interface ParsedCidr {
  version: IpVersion;
  /** Address bytes (4 or 16). */
  bytes: number[];
  prefix: number;
}

function parseIpv4Parts(text: string, allowShort: boolean): number[] | undefined {
  const parts = text.split('.');
  if (parts.length > 4 || (!allowShort && parts.length !== 4)) return undefined;
  const bytes: number[] = [];
  for (const part of parts) {
    // Decimal only: a leading zero (`010`) is refused, as inet_pton does, since inet_aton (and so
    // netaddr, which Calico v1 used) would read it as octal.
    if (!/^(0|[1-9]\d{0,2})$/.test(part)) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    bytes.push(n);
  }
  while (bytes.length < 4) bytes.push(0);
  return bytes;
}

/** Value of a hex digit's character code (either case), or -1. */
function hexDigit(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  const lower = code | 0x20;
  if (lower >= 97 && lower <= 102) return lower - 87;
  return -1;
}

/**
 * The 16 bytes of an IPv6 address: 1–4 hex digits per group, one `::` at most for a run of zero
 * groups, optionally a dotted-quad IPv4 tail in place of the last two groups. One scan, no
 * intermediate strings (endpoint values that are not in canonical form come through here).
 */
function parseIpv6Bytes(text: string): number[] | undefined {
  const n = text.length;
  const groups: number[] = [];
  /** Index in `groups` where the `::` run goes, or -1. */
  let gap = -1;
  let i = 0;
  if (text.charCodeAt(0) === 58) {
    if (text.charCodeAt(1) !== 58) return undefined;
    gap = 0;
    i = 2;
  } else if (n === 0) return undefined;
  while (i < n) {
    const start = i;
    let value = 0;
    for (let digit = hexDigit(text.charCodeAt(i)); digit >= 0; digit = hexDigit(text.charCodeAt(++i))) value = value * 16 + digit;
    if (text.charCodeAt(i) === 46) {
      // A dotted IPv4 tail (`::ffff:1.2.3.4`) is the last two groups.
      const v4 = parseIpv4Parts(text.slice(start), false);
      if (!v4) return undefined;
      groups.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      break;
    }
    const digits = i - start;
    if (digits === 0 || digits > 4 || groups.length === 8) return undefined;
    groups.push(value);
    if (i === n) break;
    if (text.charCodeAt(i) !== 58) return undefined;
    i++;
    if (text.charCodeAt(i) === 58) {
      if (gap >= 0) return undefined;
      gap = groups.length;
      i++;
    } else if (i === n) return undefined;
  }
  const explicit = groups.length;
  if (gap < 0 ? explicit !== 8 : explicit > 7) return undefined;
  const bytes = new Array<number>(16).fill(0);
  for (let g = 0; g < explicit; g++) {
    // Groups after the gap are right-aligned.
    const at = gap < 0 || g < gap ? g : g + 8 - explicit;
    bytes[2 * at] = groups[g]! >> 8;
    bytes[2 * at + 1] = groups[g]! & 0xff;
  }
  return bytes;
}

function formatIpv6(bytes: number[]): string {
  let mapped = bytes[10] === 0xff && bytes[11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) mapped = bytes[i] === 0;
  // RFC 5952 §5: IPv4-mapped addresses keep their dotted-quad tail.
  if (mapped) return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  // The first longest run of two or more zero groups becomes `::`.
  let bestStart = -1;
  let bestLength = 1;
  for (let g = 0; g < 8; ) {
    if (bytes[2 * g] !== 0 || bytes[2 * g + 1] !== 0) {
      g++;
      continue;
    }
    let end = g;
    while (end < 8 && bytes[2 * end] === 0 && bytes[2 * end + 1] === 0) end++;
    if (end - g > bestLength) {
      bestStart = g;
      bestLength = end - g;
    }
    g = end;
  }
  let text = '';
  for (let g = 0; g < 8; g++) {
    if (g === bestStart) {
      text += '::';
      g += bestLength - 1;
      continue;
    }
    if (text !== '' && !text.endsWith(':')) text += ':';
    text += ((bytes[2 * g]! << 8) | bytes[2 * g + 1]!).toString(16);
  }
  return text;
}

export function formatIp(version: IpVersion, bytes: number[]): string {
  return version === 4 ? bytes.join('.') : formatIpv6(bytes);
}

/** Parses a bare IPv4 or IPv6 address. */
export function parseIp(text: string): { version: IpVersion; bytes: number[] } | undefined {
  const v4 = parseIpv4Parts(text, false);
  if (v4) return { version: 4, bytes: v4 };
  if (text.includes(':')) {
    const v6 = parseIpv6Bytes(text);
    if (v6) return { version: 6, bytes: v6 };
  }
  return undefined;
}

/** Parses `addr[/prefix]`; a bare address gets a host prefix. */
export function parseCidr(text: string): ParsedCidr | undefined {
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const prefixText = slash < 0 ? undefined : text.slice(slash + 1);
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return undefined;
  let version: IpVersion;
  let bytes: number[] | undefined;
  if (addrText.includes(':')) {
    version = 6;
    bytes = parseIpv6Bytes(addrText);
  } else {
    version = 4;
    bytes = parseIpv4Parts(addrText, prefixText !== undefined);
  }
  if (!bytes) return undefined;
  const maxPrefix = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? maxPrefix : Number(prefixText);
  if (prefix > maxPrefix) return undefined;
  return { version, bytes, prefix };
}

export function formatCidr(cidr: ParsedCidr): string {
  return `${formatIp(cidr.version, cidr.bytes)}/${cidr.prefix}`;
}

/** An IPv4 CIDR already in canonical form (decimal octets and prefix without leading zeros). */
const CANONICAL_IPV4_CIDR = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\/(?:3[0-2]|[12]?\d)$/;

/** Hex digit value of a lower-case hex character code, or -1. */
function lowerHexDigit(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 97 && code <= 102) return code - 87;
  return -1;
}

const groupsSeen = new Array<number>(8).fill(0);

/**
 * Whether `text[0, end)` is an IPv6 address exactly as formatIpv6 writes it: lower-case groups
 * without leading zeros, `::` for the first longest run of two or more zero groups and nowhere
 * else, and not an IPv4-mapped address (written with a dotted tail). False means "parse it".
 */
function isCanonicalIpv6(text: string, end: number): boolean {
  let n = 0;
  let gap = -1;
  let i = 0;
  if (text.startsWith('::')) {
    gap = 0;
    i = 2;
  }
  while (i < end) {
    const start = i;
    let value = 0;
    for (let digit = lowerHexDigit(text.charCodeAt(i)); i < end && digit >= 0; digit = lowerHexDigit(text.charCodeAt(++i))) value = value * 16 + digit;
    const length = i - start;
    if (length === 0 || length > 4 || (length > 1 && text.charCodeAt(start) === 48) || n === 8) return false;
    groupsSeen[n++] = value;
    if (i === end) break;
    if (text.charCodeAt(i) !== 58) return false;
    i++;
    if (i < end && text.charCodeAt(i) === 58) {
      if (gap >= 0) return false;
      gap = n;
      i++;
    } else if (i === end) return false;
  }
  if (gap < 0) {
    if (n !== 8) return false;
    for (let g = 1; g < 8; g++) if (groupsSeen[g] === 0 && groupsSeen[g - 1] === 0) return false;
    return true;
  }
  const run = 8 - n;
  if (run < 2) return false;
  // The compressed run must not touch a zero group, and no explicit zero run may be as long
  // (left of it) or longer (right of it).
  if ((gap > 0 && groupsSeen[gap - 1] === 0) || (gap < n && groupsSeen[gap] === 0)) return false;
  for (let g = 0, zeros = 0; g < n; g++) {
    if (g === gap) zeros = 0;
    zeros = groupsSeen[g] === 0 ? zeros + 1 : 0;
    if (zeros > run || (zeros === run && g < gap)) return false;
  }
  // IPv4-mapped (::ffff:a.b.c.d) is written with its dotted tail.
  return !(gap === 0 && n === 3 && groupsSeen[0] === 0xffff);
}

/** A prefix length in canonical decimal (no leading zero) of at most `max`. */
function isCanonicalPrefix(text: string, start: number, max: number): boolean {
  const digits = text.length - start;
  if (digits < 1 || digits > 3 || (digits > 1 && text.charCodeAt(start) === 48)) return false;
  let value = 0;
  for (let i = start; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 48 || code > 57) return false;
    value = value * 10 + code - 48;
  }
  return value <= max;
}

/** Canonical CIDR text, or undefined when `text` is not a CIDR or bare IP. */
export function canonicalCidr(text: string): string | undefined {
  // The common case (every stored endpoint net is canonical) without parsing.
  if (CANONICAL_IPV4_CIDR.test(text)) return text;
  const slash = text.indexOf('/');
  if (slash > 0 && isCanonicalPrefix(text, slash + 1, 128) && isCanonicalIpv6(text, slash)) return text;
  const parsed = parseCidr(text);
  return parsed && formatCidr(parsed);
}

/** Canonical bare IP text, or undefined. */
export function canonicalIp(text: string): string | undefined {
  const parsed = parseIp(text);
  return parsed && formatIp(parsed.version, parsed.bytes);
}

/** Canonical CIDR text when `text` is a CIDR (or bare IP) of family `version`, else undefined. */
export function canonicalCidrOf(version: IpVersion, text: string): string | undefined {
  const canonical = canonicalCidr(text);
  return canonical !== undefined && cidrVersion(canonical) === version ? canonical : undefined;
}

/** Canonical bare IP text when `text` is an IP of family `version`, else undefined. */
export function canonicalIpOf(version: IpVersion, text: string): string | undefined {
  const canonical = canonicalIp(text);
  return canonical !== undefined && cidrVersion(canonical) === version ? canonical : undefined;
}

/** IP version of a CIDR or bare address (no validation beyond the separator). */
export function cidrVersion(text: string): IpVersion {
  return text.includes(':') ? 6 : 4;
}

/** The address part of a canonical CIDR (`10.0.0.1/32` → `10.0.0.1`). */
export function cidrAddress(cidr: string): string {
  const slash = cidr.indexOf('/');
  return slash < 0 ? cidr : cidr.slice(0, slash);
}

/** The CIDR with its host bits cleared (`10.0.0.1/24` → `10.0.0.0/24`). */
export function maskedCidr(cidr: string): string | undefined {
  const parsed = parseCidr(cidr);
  if (!parsed) return undefined;
  const bytes = parsed.bytes.map((b, i) => {
    const bitsLeft = parsed.prefix - i * 8;
    if (bitsLeft >= 8) return b;
    if (bitsLeft <= 0) return 0;
    return b & (0xff << (8 - bitsLeft)) & 0xff;
  });
  return formatCidr({ ...parsed, bytes });
}

const MAC_RE = /^([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})$/;

const CANONICAL_MAC_RE = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;

/** Lower-case colon form of a MAC (`AA-bb-…` → `aa:bb:…`), or undefined. */
export function canonicalMac(text: string): string | undefined {
  if (CANONICAL_MAC_RE.test(text)) return text;
  const m = MAC_RE.exec(text);
  return m ? m.slice(1).join(':').toLowerCase() : undefined;
}

/** Whether the address `ip` lies inside `cidr` (a bare address is its host prefix); false across families. */
export function cidrContains(cidr: string, ip: string): boolean {
  const net = parseCidr(cidr);
  const address = parseIp(ip);
  if (!net || !address || net.version !== address.version) return false;
  for (let bit = 0; bit < net.prefix; bit += 8) {
    const bits = Math.min(8, net.prefix - bit);
    const mask = (0xff << (8 - bits)) & 0xff;
    if ((net.bytes[bit / 8]! & mask) !== (address.bytes[bit / 8]! & mask)) return false;
  }
  return true;
}
