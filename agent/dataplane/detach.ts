/**
 * Copies a substring into a string of its own. V8 makes a substring of 13 or more characters a
 * view into its parent, so a chain name or set member cut from a 10 MB `*-save` output would keep
 * the whole output alive for as long as the name is cached. Parsers pass what they keep through
 * this.
 */
export function detach(text: string): string {
  return text.length < 13 ? text : Buffer.from(text, 'utf8').toString('utf8');
}
