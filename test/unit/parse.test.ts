// Parse and its pattern library: what each named pattern reads, the usage
// errors a bad pattern gives, and what the filter does with matches, mismatches
// and over-long fields in a real chain.
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/core/errors.js';
import parse from '../../src/filters/parse.js';
import { LIBRARY, PatternError, captureFields, compilePattern, convert, libraryHelp } from '../../src/common/grok-patterns.js';
import { harness, prepare } from './filter-harness.js';

/** The fields `pattern` takes from `text`, or undefined when it does not match. */
function fieldsOf(pattern: string, text: string, definitions?: Record<string, string>, types?: Record<string, string>) {
  const compiled = compilePattern(pattern, definitions, types);
  const match = compiled.regex.exec(text);
  if (!match) return undefined;
  const fields: Record<string, unknown> = {};
  captureFields(compiled, match, fields);
  return fields;
}

function patternError(pattern: string, definitions?: Record<string, string>): string {
  try {
    compilePattern(pattern, definitions);
  } catch (error) {
    expect(error).toBeInstanceOf(PatternError);
    return (error as Error).message;
  }
  throw new Error(`${pattern} compiled`);
}

describe('the pattern library', () => {
  it.each([
    ['%{INT:n}', 'x -42 y', { n: '-42' }],
    ['%{NUMBER:n}', 'took 1.5e3ms', { n: '1.5e3' }],
    ['%{WORD:w}', '  hello, world', { w: 'hello' }],
    ['%{NOTSPACE:a} %{GREEDYDATA:b}', 'GET /a?b=c rest of it', { a: 'GET', b: '/a?b=c rest of it' }],
    ['^%{DATA:a}=%{GREEDYDATA:b}$', 'k=v=w', { a: 'k', b: 'v=w' }],
    ['%{QUOTEDSTRING:q}', 'say "a \\"b\\" c" now', { q: '"a \\"b\\" c"' }],
    ['%{UUID:id}', 'id 123e4567-e89b-12d3-a456-426614174000.', { id: '123e4567-e89b-12d3-a456-426614174000' }],
    ['^%{IP:ip}$', '192.168.10.255', { ip: '192.168.10.255' }],
    ['^%{IP:ip}$', '2001:db8::8a2e:370:7334', { ip: '2001:db8::8a2e:370:7334' }],
    ['^%{IP:ip}$', '::1', { ip: '::1' }],
    ['^%{IP:ip}$', '::ffff:192.0.2.1', { ip: '::ffff:192.0.2.1' }],
    ['^%{HOSTNAME:h}$', 'api-3.eu.example.com', { h: 'api-3.eu.example.com' }],
    ['^%{IPORHOST:h} ', 'web-01 x', { h: 'web-01' }],
    ['%{LOGLEVEL:l}', '[Warning] disk', { l: 'Warning' }],
    ['%{LOGLEVEL:l}', 'level=CRITICAL x', { l: 'CRITICAL' }],
    ['%{TIMESTAMP_ISO8601:t}', 'at 2026-03-01T12:00:00.5+01:00 ok', { t: '2026-03-01T12:00:00.5+01:00' }],
    ['%{TIMESTAMP_ISO8601:t}', '2026-03-01 12:00:00,123 - x', { t: '2026-03-01 12:00:00,123' }],
    ['^%{SYSLOGTIMESTAMP:t} ', 'Mar  1 02:03:04 host', { t: 'Mar  1 02:03:04' }],
    ['%{HTTPDATE:t}', '[01/Mar/2026:12:00:00 +0100]', { t: '01/Mar/2026:12:00:00 +0100' }],
  ])('%s reads %j', (pattern, text, fields) => {
    expect(fieldsOf(pattern, text)).toEqual(fields);
  });

  it.each([
    ['^%{IP:ip}$', '256.1.1.1'],
    ['^%{IP:ip}$', '1.2.3'],
    ['^%{INT:n}$', '12a'],
    ['^%{TIMESTAMP_ISO8601:t}$', '2026-3-1 12:00'],
    ['%{LOGLEVEL:l}', 'information'],
  ])('%s does not read %j', (pattern, text) => {
    expect(fieldsOf(pattern, text)).toBeUndefined();
  });

  describe('PYTHON_LOGGING', () => {
    it('reads the "asctime - levelname - name - message" form', () => {
      expect(fieldsOf('%{PYTHON_LOGGING}', '2026-11-29 18:11:09,123 - ERROR - shop.pay - charge failed - card é declined')).toEqual({
        timestamp: '2026-11-29 18:11:09,123',
        level: 'ERROR',
        logger: 'shop.pay',
        message: 'charge failed - card é declined',
      });
    });

    it('reads the cookbook form with name before level', () => {
      expect(fieldsOf('%{PYTHON_LOGGING}', '2026-11-29 18:11:09,123 - shop - WARNING - low stock')).toEqual({
        timestamp: '2026-11-29 18:11:09,123',
        logger: 'shop',
        level: 'WARNING',
        message: 'low stock',
      });
    });

    it("reads basicConfig's default form", () => {
      expect(fieldsOf('%{PYTHON_LOGGING}', 'WARNING:root:careful: it is 3:00')).toEqual({ level: 'WARNING', logger: 'root', message: 'careful: it is 3:00' });
      expect(fieldsOf('%{PYTHON_LOGGING}', 'Level 5:app:custom')).toEqual({ level: 'Level 5', logger: 'app', message: 'custom' });
    });

    it('does not read traceback lines', () => {
      for (const line of ['Traceback (most recent call last):', '  File "x.py", line 1, in <module>', "KeyError: 'x'", 'ValueError: a:b:c']) {
        expect(fieldsOf('%{PYTHON_LOGGING}', line), line).toBeUndefined();
      }
    });
  });

  describe('syslog', () => {
    it('reads what util-linux logger sends in RFC 3164 form, and syslog files', () => {
      expect(fieldsOf('%{SYSLOG_RFC3164}', '<13>Nov 29 18:10:29 vm myapp[10592]: hello 3164 é')).toEqual({
        priority: 13,
        timestamp: 'Nov 29 18:10:29',
        host: 'vm',
        program: 'myapp',
        pid: 10592,
        message: 'hello 3164 é',
      });
      expect(fieldsOf('%{SYSLOG_RFC3164}', 'Mar  1 02:03:04 db-1 kernel: [12.5] usb 1-1: new device')).toEqual({
        timestamp: 'Mar  1 02:03:04',
        host: 'db-1',
        program: 'kernel',
        message: '[12.5] usb 1-1: new device',
      });
      expect(fieldsOf('%{SYSLOG_RFC3164}', '2026-11-29T18:10:29.935455+00:00 vm sshd[7]: Accepted publickey')).toMatchObject({
        timestamp: '2026-11-29T18:10:29.935455+00:00',
        host: 'vm',
        program: 'sshd',
        pid: 7,
      });
      expect(fieldsOf('%{SYSLOG_RFC3164}', 'Nov 29 18:10:29 cron: job done')).toEqual({ timestamp: 'Nov 29 18:10:29', program: 'cron', message: 'job done' });
    });

    it('reads RFC 5424, leaving out nil values', () => {
      expect(
        fieldsOf(
          '%{SYSLOG_RFC5424}',
          '<13>1 2026-11-29T18:10:29.935455+00:00 vm myapp - ID47 [timeQuality tzKnown="1" isSynced="0"][ex@32473 iut="3" note="a \\"]\\" b"] hello 5424',
        ),
      ).toEqual({
        priority: 13,
        version: 1,
        timestamp: '2026-11-29T18:10:29.935455+00:00',
        host: 'vm',
        app: 'myapp',
        msgid: 'ID47',
        structured_data: '[timeQuality tzKnown="1" isSynced="0"][ex@32473 iut="3" note="a \\"]\\" b"]',
        message: 'hello 5424',
      });
      expect(fieldsOf('%{SYSLOG_RFC5424}', '<165>1 - - - - - -')).toEqual({ priority: 165, version: 1 });
    });
  });

  describe('access logs', () => {
    it('reads the Common Log Format, and Python http.server lines', () => {
      expect(fieldsOf('%{COMMON_LOG}', '10.0.0.7 - alice [01/Mar/2026:12:00:00 +0100] "GET /orders?id=7 HTTP/1.1" 200 5120')).toEqual({
        client: '10.0.0.7',
        user: 'alice',
        timestamp: '01/Mar/2026:12:00:00 +0100',
        method: 'GET',
        path: '/orders?id=7',
        http_version: '1.1',
        status: 200,
        bytes: 5120,
      });
      expect(fieldsOf('%{COMMON_LOG}', '127.0.0.1 - - [29/Nov/2026 18:10:29] "GET /missing HTTP/1.0" 404 -')).toEqual({
        client: '127.0.0.1',
        timestamp: '29/Nov/2026 18:10:29',
        method: 'GET',
        path: '/missing',
        http_version: '1.0',
        status: 404,
      });
    });

    it('keeps a request line that is not METHOD PATH VERSION whole', () => {
      expect(fieldsOf('%{COMMON_LOG}', 'scanner.example - - [01/Mar/2026:12:00:00 +0000] "\\x16\\x03\\x01" 400 157')).toMatchObject({
        client: 'scanner.example',
        request: '\\x16\\x03\\x01',
        status: 400,
      });
    });

    it('reads the Combined Log Format', () => {
      expect(
        fieldsOf('%{COMBINED_LOG}', '2001:db8::1 - - [01/Mar/2026:12:00:00 +0000] "POST /cart HTTP/2.0" 201 12 "-" "curl/8.5.0 (x86_64) \\"q\\""'),
      ).toEqual({
        client: '2001:db8::1',
        timestamp: '01/Mar/2026:12:00:00 +0000',
        method: 'POST',
        path: '/cart',
        http_version: '2.0',
        status: 201,
        bytes: 12,
        agent: 'curl/8.5.0 (x86_64) \\"q\\"',
      });
      expect(fieldsOf('%{COMMON_LOG}', '1.2.3.4 - - [01/Mar/2026:12:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "x"')).toBeUndefined();
    });
  });

  it('lists every documented pattern in the help, with the field names of whole-line ones', () => {
    const help = libraryHelp();
    for (const name of ['INT', 'NUMBER', 'WORD', 'NOTSPACE', 'DATA', 'GREEDYDATA', 'IP', 'HOSTNAME', 'TIMESTAMP_ISO8601', 'LOGLEVEL', 'SYSLOGTIMESTAMP', 'PYTHON_LOGGING', 'SYSLOG_RFC3164', 'SYSLOG_RFC5424', 'COMMON_LOG', 'COMBINED_LOG']) {
      expect(LIBRARY[name], name).toBeDefined();
      expect(help).toContain(`${name}: `);
    }
    expect(help).toMatch(/PYTHON_LOGGING: [^.]*fields timestamp .*level, logger, message/);
  });

  it('every library pattern compiles on its own', () => {
    for (const name of Object.keys(LIBRARY)) expect(() => compilePattern(`%{${name}}`), name).not.toThrow();
  });
});

describe('compiling patterns', () => {
  it('names the unknown pattern, with the closest known one', () => {
    expect(patternError('%{INTT:n}')).toBe('%{INTT} is not a known pattern (did you mean %{INT}?); see message-passing --help Parse, or add it to definitions');
  });

  it('says what is wrong with a regular expression, without repeating all of it', () => {
    expect(patternError('%{WORD:a} (unclosed')).toBe('not a valid regular expression: Unterminated group');
  });

  it('refuses a reference to itself, a bad field name, an unknown type and a malformed reference', () => {
    expect(patternError('%{A}', { A: 'x%{B}', B: '%{A}' })).toBe('%{A} refers to itself (%{A} -> %{B} -> %{A})');
    expect(patternError('%{INT:no space}')).toMatch(/'no space' is not a field name/);
    expect(patternError('%{INT:n:long}')).toMatch(/unknown type 'long'/);
    expect(patternError('%{INT:a:integer:x}')).toMatch(/is not of the form/);
    expect(patternError('%{INT')).toMatch(/not closed/);
  });

  it('takes definitions (which win over the library) and user named groups, with back-references', () => {
    expect(fieldsOf('order %{ORDER:id}', 'order A-17 paid', { ORDER: '[A-Z]-\\d+' })).toEqual({ id: 'A-17' });
    expect(fieldsOf('%{INT:n}', 'x 12', { INT: '\\d' })).toEqual({ n: '1' });
    expect(fieldsOf('(?<q>["\'])(?<text>.*?)\\k<q>', `say 'hi' "x"`)).toEqual({ q: "'", text: 'hi' });
  });

  it('lets several groups fill one field: the first that matched wins', () => {
    expect(fieldsOf('^(?:(?<v>\\d+)|x(?<v>\\w+))$', 'xab')).toEqual({ v: 'ab' });
    expect(fieldsOf('(?<v>a)(?<v>b)', 'ab')).toEqual({ v: 'a' });
  });

  it('leaves escaped and bracketed text alone', () => {
    expect(fieldsOf('\\%{INT}[%{]', '%{INT}%')).toEqual({});
  });

  it('converts typed fields, and says why a value is not of its type', () => {
    expect(fieldsOf('%{INT:a:int} %{NUMBER:b:float} %{WORD:c:boolean}', '7 2.5 yes')).toEqual({ a: 7, b: 2.5, c: true });
    expect(fieldsOf('(?<a>\\S+)', '12', {}, { a: 'integer' })).toEqual({ a: 12 });
    expect(() => convert('99999999999999999999', 'integer', 'n')).toThrow("field 'n': \"99999999999999999999\" is not an integer (or not a safe one)");
    expect(() => convert('maybe', 'boolean', 'ok')).toThrow(/is not a boolean/);
    expect(() => convert('x', 'number', 'n')).toThrow(/is not a number/);
  });
});

describe('Parse filter options', () => {
  const usage = (options: unknown) => {
    try {
      prepare(parse, options);
    } catch (error) {
      expect(error).toBeInstanceOf(UsageError);
      return (error as Error).message;
    }
    throw new Error('accepted');
  };

  it('are usage errors that say which pattern fails and why', () => {
    expect(usage({})).toBe('--filter Test: give one of pattern or patterns');
    expect(usage({ pattern: 'a', patterns: ['b'] })).toBe('--filter Test: give one of pattern or patterns');
    expect(usage({ pattern: '%{NOPE}' })).toMatch(/^--filter Test: pattern "%\{NOPE\}": %\{NOPE\} is not a known pattern/);
    expect(usage({ patterns: ['%{INT:n}', '(?<x>'] })).toMatch(/^--filter Test: patterns\[1\] "\(\?<x>": not a valid regular expression/);
    expect(usage({ pattern: 'x', types: { n: 'long' } })).toMatch(/field 'n' has type "long"/);
    expect(usage({ pattern: 'x', types: 'integer' })).toMatch(/'types' must be an object/);
    expect(usage({ pattern: 'x', definitions: { 'A-B': 'x' } })).toMatch(/'A-B' is not a pattern name/);
    expect(usage({ pattern: 'x', definitions: { A: 1 } })).toMatch(/A must be a string/);
    expect(usage({ pattern: 'x', on_mismatch: 'ignore' })).toMatch(/on_mismatch' must be one of error, pass, drop/);
    expect(usage({ pattern: 'x', max_length: '1M' })).toMatch(/max_length/);
  });
});

describe('Parse in a chain', () => {
  it('makes a text line (--decoder Null) into its fields, in the order of the pattern', async () => {
    const h = await harness(parse, { pattern: '%{PYTHON_LOGGING}' }, 'null');
    h.send(['2026-11-29 18:11:09,123 - INFO - shop - started', 'ERROR:root:boom']);
    await h.end();
    expect(h.out).toEqual([
      { timestamp: '2026-11-29 18:11:09,123', level: 'INFO', logger: 'shop', message: 'started' },
      { level: 'ERROR', logger: 'root', message: 'boom' },
    ]);
    expect(JSON.stringify(h.out[0])).toBe('{"timestamp":"2026-11-29 18:11:09,123","level":"INFO","logger":"shop","message":"started"}');
  });

  it('keeps the line when no capture replaces it', async () => {
    const h = await harness(parse, { pattern: 'took (?<took>\\d+)ms', types: { took: 'integer' } }, 'null');
    h.send(['GET / took 12ms']);
    await h.end();
    expect(h.out).toEqual([{ message: 'GET / took 12ms', took: 12 }]);
  });

  it('merges into an object message, nesting dotted field names, and keeps its other fields', async () => {
    const h = await harness(parse, { field: 'line', pattern: '%{WORD:http.method} %{NOTSPACE:http.path} %{INT:http.status:integer}' });
    h.send([{ host: 'web-1', line: 'GET /a 200', http: { version: '1.1' } }]);
    await h.end();
    expect(h.out).toEqual([{ host: 'web-1', line: 'GET /a 200', http: { version: '1.1', method: 'GET', path: '/a', status: 200 } }]);
  });

  it('puts the fields under target when asked', async () => {
    const h = await harness(parse, { pattern: '%{COMMON_LOG}', target: 'http' });
    h.send([{ message: '10.0.0.1 - - [01/Mar/2026:12:00:00 +0000] "GET / HTTP/1.1" 304 -' }]);
    await h.end();
    expect(h.out).toEqual([
      {
        message: '10.0.0.1 - - [01/Mar/2026:12:00:00 +0000] "GET / HTTP/1.1" 304 -',
        http: { client: '10.0.0.1', timestamp: '01/Mar/2026:12:00:00 +0000', method: 'GET', path: '/', http_version: '1.1', status: 304 },
      },
    ]);
  });

  it('tries patterns in order: the first that matches wins', async () => {
    const h = await harness(parse, { patterns: ['^%{INT:number}$', '^%{WORD:word}$', '^%{NOTSPACE:other}$'] }, 'null');
    h.send(['42', 'abc', 'a-b']);
    await h.end();
    expect(h.out).toEqual([
      { message: '42', number: '42' },
      { message: 'abc', word: 'abc' },
      { message: 'a-b', other: 'a-b' },
    ]);
  });

  it('sends a mismatch to the error output by default, and the rest goes on', async () => {
    const h = await harness(parse, { pattern: '^%{INT:n}$' }, 'null');
    h.send(['1', 'two', '3']);
    await h.end();
    expect(h.out).toEqual([{ message: '1', n: '1' }, { message: '3', n: '3' }]);
    expect(h.errors).toEqual([{ error: 'filter', reason: "no pattern matched field 'message'", source: 'test:2', stage: 'filter Test', frame: 'two' }]);
    expect(h.counters).toMatchObject({ in: 3, out: 2, errors: 1, dropped: 0 });
  });

  it('passes a mismatch on unchanged (a line as {message}), or drops it, as on_mismatch says', async () => {
    const pass = await harness(parse, { pattern: '^%{INT:n}$', on_mismatch: 'pass' }, 'null');
    pass.send(['two', '3']);
    await pass.end();
    expect(pass.out).toEqual([{ message: 'two' }, { message: '3', n: '3' }]);

    const drop = await harness(parse, { pattern: '^%{INT:n}$', on_mismatch: 'drop' });
    drop.send([{ message: 'two' }, { other: 1 }, { message: '3' }]);
    await drop.end();
    expect(drop.out).toEqual([{ message: '3', n: '3' }]);
    expect(drop.counters).toMatchObject({ in: 3, out: 1, dropped: 2, errors: 0 });
  });

  it('reports a missing or non-string field as a mismatch', async () => {
    const h = await harness(parse, { pattern: 'x' });
    h.send([{ other: 1 }, { message: 5 }, 'just a string', [1]]);
    await h.end();
    expect(h.errors.map((e) => e.reason)).toEqual([
      "field 'message' is missing",
      "field 'message' is not a string",
      'no pattern matched field \'message\'',
      'Parse expects an object or a line of text, got a list',
    ]);
  });

  it('does not run a pattern on a field longer than max_length: an error record, whatever on_mismatch says', async () => {
    const h = await harness(parse, { pattern: '^(a+)+$', max_length: '1KiB', on_mismatch: 'drop' }, 'null');
    // Catastrophic for a backtracking engine if it ran: 2^2000 ways to split the a's.
    const hostile = 'a'.repeat(2000) + '!';
    h.send([hostile, 'a'.repeat(1024)]);
    await h.end();
    expect(h.out).toEqual([{ message: 'a'.repeat(1024) }]);
    expect(h.errors).toHaveLength(1);
    expect(h.errors[0]).toMatchObject({ error: 'filter', reason: "field 'message' is longer than max_length (1KiB): not matched" });
    expect(h.errors[0]!.frame).toHaveLength(1024);
  });

  it('counts max_length in UTF-8 bytes', async () => {
    const h = await harness(parse, { pattern: '^(?<all>.*)$', max_length: 10 }, 'null');
    h.send(['ééééé', 'éééééé']);
    await h.end();
    expect(h.out).toEqual([{ message: 'ééééé', all: 'ééééé' }]);
    expect(h.errors.map((e) => e.reason)).toEqual(["field 'message' is longer than max_length (10B): not matched"]);
  });

  it('sends a value that does not read as its type to the error output', async () => {
    const h = await harness(parse, { pattern: '^(?<n>\\S+)$', types: { n: 'integer' } }, 'null');
    h.send(['12', 'x']);
    await h.end();
    expect(h.out).toEqual([{ message: '12', n: 12 }]);
    expect(h.errors.map((e) => e.reason)).toEqual(['field \'n\': "x" is not an integer (or not a safe one)']);
  });

  it('makes a field named __proto__ a field, not a prototype', async () => {
    const h = await harness(parse, { pattern: '^(?<__proto__>\\w+)$' }, 'null');
    h.send(['polluted']);
    await h.end();
    expect(JSON.stringify(h.out[0])).toBe('{"message":"polluted","__proto__":"polluted"}');
    expect(Object.getPrototypeOf(h.out[0])).toBe(Object.prototype);
  });
});
