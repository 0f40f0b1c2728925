// Named sub-patterns for Parse, written %{NAME} or %{NAME:field} (grok style),
// and how a pattern that uses them becomes one JavaScript regular expression.
//
// Every pattern here is written so that no part can match the same text in two
// ways (no nested or adjacent quantifiers over overlapping characters), so that
// a line that does not match fails in time about linear in its length.
import { closest } from '../core/options.js';
import { isRecord, put, setField, type Fields } from './fields.js';

export type FieldType = 'integer' | 'number' | 'boolean' | 'string';

/** Type names accepted in `types` and in %{NAME:field:type}. */
export const FIELD_TYPES: Readonly<Record<string, FieldType>> = {
  integer: 'integer',
  int: 'integer',
  number: 'number',
  float: 'number',
  boolean: 'boolean',
  bool: 'boolean',
  string: 'string',
};

interface LibraryPattern {
  regex: string;
  /** For --help Parse; absent on building blocks that are not listed. */
  about?: string;
}

const MONTH = '\\b(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\\b';
const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
/** The inside of a double-quoted string with backslash escapes. */
const QUOTED_INSIDE = '(?:[^"\\\\]|\\\\.)*';

export const LIBRARY: Readonly<Record<string, LibraryPattern>> = {
  INT: { regex: '[+-]?\\d+', about: 'an integer, with an optional sign' },
  POSINT: { regex: '\\b[1-9]\\d*\\b', about: 'a positive integer' },
  NONNEGINT: { regex: '\\b\\d+\\b', about: 'zero or a positive integer' },
  NUMBER: { regex: '[+-]?(?:\\d+(?:\\.\\d+)?|\\.\\d+)(?:[eE][+-]?\\d+)?', about: 'a decimal number' },
  WORD: { regex: '\\b\\w+\\b', about: 'letters, digits and _' },
  NOTSPACE: { regex: '\\S+', about: 'anything up to a space' },
  SPACE: { regex: '\\s*', about: 'spaces, maybe none' },
  DATA: { regex: '.*?', about: 'anything, as little as possible' },
  GREEDYDATA: { regex: '.*', about: 'anything, as much as possible' },
  QUOTEDSTRING: { regex: `"${QUOTED_INSIDE}"`, about: 'a double-quoted string with \\ escapes' },
  UUID: { regex: '\\b[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}\\b', about: 'a UUID' },
  IPV4: { regex: `(?<![0-9])(?:${OCTET}\\.){3}${OCTET}(?![0-9])`, about: 'an IPv4 address' },
  IPV6: {
    regex: '(?:(?:[0-9A-Fa-f]{0,4}:){2,6}%{IPV4}|(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4})(?![0-9A-Fa-f:.])',
    about: 'an IPv6 address (checked loosely)',
  },
  IP: { regex: '(?:%{IPV6}|%{IPV4})', about: 'an IPv4 or IPv6 address' },
  HOSTNAME: {
    regex: '\\b[0-9A-Za-z][0-9A-Za-z-]{0,62}(?:\\.[0-9A-Za-z][0-9A-Za-z-]{0,62})*\\b\\.?',
    about: 'a host name (labels joined by dots)',
  },
  IPORHOST: { regex: '(?:%{IP}|%{HOSTNAME})', about: 'an IP address or a host name' },
  LOGLEVEL: {
    regex:
      '\\b(?:[Tt]race|TRACE|[Dd]ebug|DEBUG|[Ii]nfo|INFO|[Nn]otice|NOTICE|[Ww]arn(?:ing)?|WARN(?:ING)?|[Ee]rr(?:or)?|ERR(?:OR)?|' +
      '[Cc]rit(?:ical)?|CRIT(?:ICAL)?|[Ff]atal|FATAL|[Ss]evere|SEVERE|[Ee]merg(?:ency)?|EMERG(?:ENCY)?|[Aa]lert|ALERT|FINEST|FINER|FINE|CONFIG)\\b',
    about: 'a log level name (debug, INFO, Warning, ERR, CRITICAL, SEVERE, ...)',
  },
  MONTH: { regex: MONTH, about: 'an English month name or its first three letters' },
  TIMESTAMP_ISO8601: {
    regex: '\\d{4}-\\d{2}-\\d{2}[T ]\\d{2}:\\d{2}(?::\\d{2}(?:[.,]\\d+)?)?(?:Z|[+-]\\d{2}(?::?\\d{2})?)?',
    about: 'an ISO 8601 date and time (2024-03-01T12:00:00.5Z, 2024-03-01 12:00:00,123)',
  },
  SYSLOGTIMESTAMP: { regex: '%{MONTH} +\\d{1,2} \\d{2}:\\d{2}:\\d{2}', about: 'a BSD syslog time (Mar  1 12:00:00)' },
  HTTPDATE: {
    regex: '\\d{2}/%{MONTH}/\\d{4}[: ]\\d{2}:\\d{2}:\\d{2}(?: [+-]\\d{4})?',
    about: 'an access log time (01/Mar/2024:12:00:00 +0100)',
  },
  PROG: { regex: '[^\\s:\\[\\]]+', about: 'a syslog program name (tag)' },

  PYTHON_LEVEL: { regex: '(?:CRITICAL|FATAL|ERROR|WARNING|WARN|INFO|DEBUG|NOTSET|TRACE|NOTICE|Level \\d+)' },
  PYTHON_LOGGING: {
    regex:
      '^(?:%{TIMESTAMP_ISO8601:timestamp} - (?:%{PYTHON_LEVEL:level} - %{DATA:logger}|%{DATA:logger} - %{PYTHON_LEVEL:level}) - ' +
      '|%{PYTHON_LEVEL:level}:(?<logger>[^:]*):)%{GREEDYDATA:message}$',
    about:
      "a line of Python's logging, as '%(asctime)s - %(levelname)s - %(name)s - %(message)s' (or with name and level swapped) " +
      "or the default '%(levelname)s:%(name)s:%(message)s'; fields timestamp (absent in the default form), level, logger, message",
  },
  SYSLOG5424SD: { regex: `(?:\\[[^\\]"]*(?:"${QUOTED_INSIDE}"[^\\]"]*)*\\])+` },
  SYSLOG_RFC3164: {
    regex:
      '^(?:<%{NONNEGINT:priority:integer}>)?(?:%{SYSLOGTIMESTAMP:timestamp}|%{TIMESTAMP_ISO8601:timestamp}) (?:%{IPORHOST:host} )?' +
      '%{PROG:program}(?:\\[%{NONNEGINT:pid:integer}\\])?: ?%{GREEDYDATA:message}$',
    about:
      'a BSD syslog line (RFC 3164, /var/log/syslog, journalctl -o short): fields priority (integer, when the line starts with <N>), ' +
      'timestamp, host, program, pid (integer), message',
  },
  SYSLOG_RFC5424: {
    regex:
      '^<%{NONNEGINT:priority:integer}>%{POSINT:version:integer} (?:-|%{TIMESTAMP_ISO8601:timestamp}) (?:-|%{NOTSPACE:host}) ' +
      '(?:-|%{NOTSPACE:app}) (?:-|%{NOTSPACE:procid}) (?:-|%{NOTSPACE:msgid}) (?:-|%{SYSLOG5424SD:structured_data})' +
      '(?: \\uFEFF?%{GREEDYDATA:message})?$',
    about:
      'a syslog line in RFC 5424 form: fields priority and version (integers), timestamp, host, app, procid, msgid, structured_data ' +
      '(the bracketed text as it is), message; a field whose value is - is left out',
  },
  HTTPD_COMMON: {
    regex:
      '%{IPORHOST:client} (?:-|%{NOTSPACE:ident}) (?:-|%{NOTSPACE:user}) \\[%{HTTPDATE:timestamp}\\] ' +
      `"(?:%{WORD:method} %{NOTSPACE:path}(?: HTTP/%{NUMBER:http_version})?|(?<request>${QUOTED_INSIDE}))" ` +
      '%{NONNEGINT:status:integer} (?:-|%{NONNEGINT:bytes:integer})',
  },
  COMMON_LOG: {
    regex: '^%{HTTPD_COMMON}$',
    about:
      'an access log line in the Common Log Format (Apache, nginx, Python http.server): fields client, ident, user, timestamp, ' +
      'method, path, http_version, status (integer), bytes (integer); request instead of method, path and http_version when ' +
      'the request line is not one; a field whose value is - is left out',
  },
  COMBINED_LOG: {
    regex: `^%{HTTPD_COMMON} "(?:-|(?<referrer>${QUOTED_INSIDE}))" "(?:-|(?<agent>${QUOTED_INSIDE}))"$`,
    about: "the Combined Log Format (Apache's combined, nginx's default): the fields of COMMON_LOG, then referrer and agent",
  },
};

/** One line per listed pattern, for --help Parse. */
export function libraryHelp(): string {
  return Object.entries(LIBRARY)
    .filter(([, p]) => p.about !== undefined)
    .map(([name, p]) => `${name}: ${p.about}.`)
    .join(' ');
}

/** A pattern that cannot be used: the message says which part, and why. */
export class PatternError extends Error {
  override name = 'PatternError';
}

export interface Capture {
  /** The regular expression's name for it (generated, so that several may fill one field). */
  group: string;
  field: string;
  type: FieldType | undefined;
  /** Groups before this one that fill the same field: when one of them matched, it wins. */
  earlier?: string[];
}

export interface CompiledPattern {
  regex: RegExp;
  captures: readonly Capture[];
}

const GROK_FIELD = /^[A-Za-z_@][\w@.-]*$/;

/**
 * Expands %{NAME}, %{NAME:field} and %{NAME:field:type} in `source` (from
 * `definitions` first, then the library) and compiles it. Named groups
 * (?<name>...) are fields too. Throws PatternError.
 */
export function compilePattern(
  source: string,
  definitions: Readonly<Record<string, string>> = {},
  types: Readonly<Record<string, string>> = {},
): CompiledPattern {
  const captures: Capture[] = [];
  const expand = (text: string, stack: readonly string[]): string => {
    /** Which generated group each name written in `text` stands for, for its \k<name> back-references. */
    const renamed = new Map<string, string>();
    let out = '';
    let inClass = false;
    for (let i = 0; i < text.length; i++) {
      const c = text[i]!;
      if (c === '\\') {
        const backReference = /^\\k<([A-Za-z_$][\w$]*)>/.exec(text.slice(i));
        if (backReference && !inClass && renamed.has(backReference[1]!)) {
          out += `\\k<${renamed.get(backReference[1]!)}>`;
          i += backReference[0].length - 1;
        } else {
          out += text.slice(i, i + 2);
          i++;
        }
        continue;
      }
      if (inClass) {
        if (c === ']') inClass = false;
        out += c;
        continue;
      }
      if (c === '[') {
        inClass = true;
        out += c;
        continue;
      }
      if (c === '(') {
        const named = /^\(\?<([A-Za-z_$][\w$]*)>/.exec(text.slice(i));
        if (named) {
          const group = `_${captures.length}`;
          captures.push({ group, field: named[1]!, type: undefined });
          renamed.set(named[1]!, group);
          out += `(?<${group}>`;
          i += named[0].length - 1;
          continue;
        }
      }
      if (c === '%' && text[i + 1] === '{') {
        const end = text.indexOf('}', i);
        if (end < 0) throw new PatternError(`'%{' at position ${i} is not closed by '}'`);
        out += reference(text.slice(i + 2, end), stack);
        i = end;
        continue;
      }
      out += c;
    }
    return out;
  };

  const reference = (inside: string, stack: readonly string[]): string => {
    const [name = '', field, type, ...extra] = inside.split(':');
    if (extra.length > 0 || !/^\w+$/.test(name)) throw new PatternError(`%{${inside}} is not of the form %{NAME}, %{NAME:field} or %{NAME:field:type}`);
    const body = Object.hasOwn(definitions, name) ? definitions[name]! : Object.hasOwn(LIBRARY, name) ? LIBRARY[name]!.regex : undefined;
    if (body === undefined) {
      const known = [...Object.keys(definitions), ...Object.keys(LIBRARY)];
      const hint = closest(name, known);
      throw new PatternError(`%{${name}} is not a known pattern${hint ? ` (did you mean %{${hint}}?)` : ''}; see message-passing --help Parse, or add it to definitions`);
    }
    if (stack.includes(name)) throw new PatternError(`%{${name}} refers to itself (${[...stack.slice(stack.indexOf(name)), name].map((n) => `%{${n}}`).join(' -> ')})`);
    if (field !== undefined && !GROK_FIELD.test(field)) throw new PatternError(`%{${inside}}: '${field}' is not a field name (letters, digits, _, @, - and dots)`);
    let fieldType: FieldType | undefined;
    if (type !== undefined) {
      fieldType = FIELD_TYPES[type];
      if (!Object.hasOwn(FIELD_TYPES, type)) throw new PatternError(`%{${inside}}: unknown type '${type}' (use integer, number, boolean or string)`);
    }
    if (field === undefined) return `(?:${expand(body, [...stack, name])})`;
    const group = `_${captures.length}`;
    captures.push({ group, field, type: fieldType });
    return `(?<${group}>${expand(body, [...stack, name])})`;
  };

  const expanded = expand(source, []);
  let regex: RegExp;
  try {
    regex = new RegExp(expanded);
  } catch (error) {
    // V8 repeats the whole expanded expression before the reason: only the reason helps.
    const reason = error instanceof Error ? error.message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /s, '') : String(error);
    throw new PatternError(`not a valid regular expression: ${reason}`);
  }
  const groupsOf = new Map<string, string[]>();
  for (const capture of captures) {
    if (Object.hasOwn(types, capture.field)) capture.type = FIELD_TYPES[types[capture.field]!];
    const before = groupsOf.get(capture.field);
    if (before) {
      capture.earlier = [...before];
      before.push(capture.group);
    } else groupsOf.set(capture.field, [capture.group]);
  }
  return { regex, captures };
}

/** Sets the captured fields of `match` on `into`, each converted to its type; the first capture of a field that matched wins. Throws on a value its type cannot read. */
export function captureFields(compiled: CompiledPattern, match: RegExpExecArray, into: Fields): void {
  const groups = match.groups!;
  for (const { group, field, type, earlier } of compiled.captures) {
    const text = groups[group];
    if (text === undefined || (earlier !== undefined && earlier.some((g) => groups[g] !== undefined))) continue;
    const value = type === undefined || type === 'string' ? text : convert(text, type, field);
    if (field.includes('.')) setField(into, field, value);
    else put(into, field, value);
  }
}

const TRUE_WORDS = new Set(['true', 'yes', 'on', '1']);
const FALSE_WORDS = new Set(['false', 'no', 'off', '0']);

/** A captured text as `type`; throws saying why it is not one. */
export function convert(text: string, type: FieldType, field: string): unknown {
  switch (type) {
    case 'integer': {
      const n = Number(text);
      if (!/^\s*[+-]?\d+\s*$/.test(text) || !Number.isSafeInteger(n)) throw new Error(`field '${field}': ${JSON.stringify(text)} is not an integer (or not a safe one)`);
      return n;
    }
    case 'number': {
      const n = Number(text);
      if (text.trim() === '' || !Number.isFinite(n)) throw new Error(`field '${field}': ${JSON.stringify(text)} is not a number`);
      return n;
    }
    case 'boolean': {
      const word = text.trim().toLowerCase();
      if (TRUE_WORDS.has(word)) return true;
      if (FALSE_WORDS.has(word)) return false;
      throw new Error(`field '${field}': ${JSON.stringify(text)} is not a boolean (true/false, yes/no, on/off, 1/0)`);
    }
    case 'string':
      return text;
  }
}

/** Reads a `types` option: {field: "integer" | "number" | "boolean" | "string"}; returns what is wrong, if anything. */
export function checkTypes(types: unknown): string | undefined {
  if (types === undefined) return undefined;
  if (!isRecord(types)) return `option 'types' must be an object like {status: "integer"}`;
  for (const [field, type] of Object.entries(types)) {
    if (typeof type !== 'string' || !Object.hasOwn(FIELD_TYPES, type)) {
      return `option 'types': field '${field}' has type ${JSON.stringify(type)}; use integer, number, boolean or string`;
    }
  }
  return undefined;
}
