/**
 * Decoding of stored etcd values into typed entries: the single validation boundary.
 *
 * Invariant: `decodeEntry` never throws. An invalid value comes back as `{ ok: false }` with a
 * one-line reason; the agent treats it as absent (fail closed), the CLI reports it.
 */
import type * as z from 'zod/mini';
import { endpointSchema, poolSchema, tagsSchema, type Endpoint, type Pool, type Tags } from './endpoint.js';
import { fastEndpoint } from './endpoint-fast-path.js';
import { ID_PATTERN } from './ids.js';
import { isValidEndpointRef, parseKey, type EndpointRef, type KeyRef } from './keys.js';
import { LIMITS } from './limits.js';
import { rulesSchema, type Rules } from './rule.js';

export type Entry =
  | { kind: 'ready'; ready: boolean }
  | { kind: 'profileRules'; profile: string; rules: Rules }
  | { kind: 'profileTags'; profile: string; tags: Tags }
  | { kind: 'endpoint'; ref: EndpointRef; endpoint: Endpoint }
  | { kind: 'globalConfig'; name: string; value: string }
  | { kind: 'hostConfig'; host: string; name: string; value: string }
  | { kind: 'pool'; version: 4 | 6; id: string; pool: Pool };

export type DecodeResult =
  | { ok: true; entry: Entry }
  | { ok: false; ref: KeyRef; reason: string }
  | { ok: 'ignored' };

/** One line naming each offending field: `inbound_rules[1].dst_ports[0]: invalid port …`. */
export function formatIssues(error: z.core.$ZodError): string {
  return error.issues
    .map((issue) => {
      const path = issue.path
        .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
        .join('');
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join('; ');
}

/** Parses JSON, returning a reason instead of throwing. */
export function parseJson(text: string): { ok: true; value: unknown } | { ok: false; reason: string } {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (e) {
    return { ok: false, reason: `invalid JSON (${(e as Error).message.replace(/[\s\u0000-\u001f\u007f]+/g, ' ')})` };
  }
}

/** `fast` may decide first (a schema's fast path: the schema's own output, or undefined to defer). */
function decodeWith<T>(schema: z.ZodMiniType<T>, text: string, fast?: (value: unknown) => T | undefined): { ok: true; value: T } | { ok: false; reason: string } {
  const json = parseJson(text);
  if (!json.ok) return json;
  const decided = fast?.(json.value);
  if (decided !== undefined) return { ok: true, value: decided };
  const parsed = schema.safeParse(json.value);
  return parsed.success ? { ok: true, value: parsed.data } : { ok: false, reason: formatIssues(parsed.error) };
}

export function decodeRules(text: string) {
  return decodeWith(rulesSchema, text);
}
export function decodeTags(text: string) {
  return decodeWith(tagsSchema, text);
}
export function decodeEndpoint(text: string) {
  return decodeWith(endpointSchema, text, fastEndpoint);
}

/** The kinds of value decoded here whose size is bounded (LIMITS.valueChars). */
const BOUNDED_KINDS: ReadonlySet<KeyRef['kind']> = new Set(['profileRules', 'profileTags', 'endpoint', 'pool']);

export function decodeEntry(key: string, value: string): DecodeResult {
  const ref = parseKey(key);
  const invalid = (reason: string): DecodeResult => ({ ok: false, ref, reason });
  if (value.length > LIMITS.valueChars && BOUNDED_KINDS.has(ref.kind)) {
    return invalid(`value of ${value.length} characters exceeds the limit of ${LIMITS.valueChars}`);
  }
  switch (ref.kind) {
    case 'ready':
      return { ok: true, entry: { kind: 'ready', ready: value === 'true' } };
    case 'profileRules':
    case 'profileTags': {
      if (!ID_PATTERN.test(ref.profile)) return invalid(`invalid profile id ${JSON.stringify(ref.profile)}`);
      if (ref.kind === 'profileRules') {
        const r = decodeRules(value);
        return r.ok ? { ok: true, entry: { kind: ref.kind, profile: ref.profile, rules: r.value } } : invalid(r.reason);
      }
      const t = decodeTags(value);
      return t.ok ? { ok: true, entry: { kind: ref.kind, profile: ref.profile, tags: t.value } } : invalid(t.reason);
    }
    case 'endpoint': {
      if (!isValidEndpointRef(ref.ref)) return invalid('invalid orchestrator, workload or endpoint id in key');
      const e = decodeEndpoint(value);
      return e.ok ? { ok: true, entry: { kind: 'endpoint', ref: ref.ref, endpoint: e.value } } : invalid(e.reason);
    }
    case 'globalConfig':
      return { ok: true, entry: { kind: 'globalConfig', name: ref.name, value } };
    case 'hostConfig':
      return { ok: true, entry: { kind: 'hostConfig', host: ref.host, name: ref.name, value } };
    case 'pool': {
      const p = decodeWith(poolSchema, value);
      return p.ok ? { ok: true, entry: { kind: 'pool', version: ref.version, id: ref.id, pool: p.value } } : invalid(p.reason);
    }
    default:
      return { ok: 'ignored' };
  }
}
