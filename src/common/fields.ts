// Writing into messages at a dotted path, for the filters that add fields
// (Parse) or replace one (Multiline). Reading is fieldValue in core/time.ts.

export type Fields = Record<string, unknown>;

const isRecord = (value: unknown): value is Fields => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Sets `value` at `path` in `target`, making the objects on the way. As with
 * fieldValue, a key that is itself written with dots ("origin.file") is used as
 * it is when the message already has it; otherwise each dot goes one level down.
 * A value on the way that is not an object is replaced by one.
 */
export function setField(target: Fields, path: string, value: unknown): void {
  if (!path.includes('.') || Object.hasOwn(target, path)) {
    put(target, path, value);
    return;
  }
  const parts = path.split('.');
  let at = target;
  for (let i = 0; i < parts.length - 1; i++) {
    const rest = parts.slice(i).join('.');
    if (Object.hasOwn(at, rest)) {
      put(at, rest, value);
      return;
    }
    const next = Object.hasOwn(at, parts[i]!) ? at[parts[i]!] : undefined;
    if (isRecord(next)) at = next;
    else {
      const made: Fields = {};
      put(at, parts[i]!, made);
      at = made;
    }
  }
  put(at, parts[parts.length - 1]!, value);
}

/** `target[key] = value`, except that "__proto__" becomes a field (as JSON.parse makes it) and not the prototype. */
export function put(target: Fields, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

export { isRecord };

/** Copies `fields` into `target`; where both hold an object under one key, their fields are merged the same way. */
export function mergeFields(target: Fields, fields: Fields): Fields {
  for (const key of Object.keys(fields)) {
    const value = fields[key];
    const present = Object.hasOwn(target, key) ? target[key] : undefined;
    if (isRecord(value) && isRecord(present)) mergeFields(present, value);
    else put(target, key, value);
  }
  return target;
}
