/**
 * Serialises JSON the way CPython's `json.dumps(value)` did for calicoctl/libcalico: `", "`
 * between items, `": "` between key and value, non-ASCII escaped as `\uXXXX`, object members in
 * the order the object holds them. Stored values therefore look exactly like the ones the
 * Python tools wrote (`{"inbound_rules": [{"action": "allow", "src_tag": "WEB"}], …}`).
 */

function escapeString(text: string): string {
  return JSON.stringify(text).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function pythonJsonDumps(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') return escapeString(value);
  if (typeof value === 'number' || typeof value === 'boolean') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(pythonJsonDumps).join(', ')}]`;
  if (typeof value === 'object') {
    const members = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${escapeString(k)}: ${pythonJsonDumps(v)}`);
    return `{${members.join(', ')}}`;
  }
  throw new TypeError(`cannot serialise ${typeof value} as JSON`);
}
