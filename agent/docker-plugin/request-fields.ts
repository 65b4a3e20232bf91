/**
 * Typed reads of the fields of a libnetwork request body (Go structs serialised as-is, PascalCase
 * names). A missing field reads as its Go zero value; a field of the wrong JSON type is refused
 * with a PluginRequestError naming it.
 */
import { PluginRequestError } from './http-server.js';

export type Body = Record<string, unknown>;

export function stringField(body: Body, name: string): string {
  const value = body[name];
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw new PluginRequestError(`${name}: expected a string`);
  return value;
}

export function booleanField(body: Body, name: string): boolean {
  const value = body[name];
  if (value === undefined || value === null) return false;
  if (typeof value !== 'boolean') throw new PluginRequestError(`${name}: expected true or false`);
  return value;
}

export function objectField(body: Body, name: string): Body {
  const value = body[name];
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new PluginRequestError(`${name}: expected an object`);
  return value as Body;
}

export function arrayField(body: Body, name: string): Body[] {
  const value = body[name];
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.some((item) => item === null || typeof item !== 'object')) {
    throw new PluginRequestError(`${name}: expected a list of objects`);
  }
  return value as Body[];
}

/** A required non-empty id field (NetworkID, EndpointID, PoolID). */
export function idField(body: Body, name: string): string {
  const value = stringField(body, name);
  if (value === '') throw new PluginRequestError(`${name} is missing`);
  return value;
}
