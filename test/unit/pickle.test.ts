// The Pickle codec against pickles made by a real python3: every plain type in
// protocols 0 to 5, the pickles Python's logging handlers send, and malicious
// ones (globals, calls, instances, expansion bombs), which must be refused
// without running anything.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GrowingBytes, pickleJsonInto, pickleProtocol1, unpickle, unpickleGeneral, UnpickleError } from '../../src/codecs/pickle.js';

/** The JSON text of a pickle that holds a dict of scalars, through the receiver's shortcut; undefined for any other. */
function pickleJson(b: Buffer): string | undefined {
  const out = new GrowingBytes(b.length * 6 + 64);
  return pickleJsonInto(b, out) ? out.buffer.toString('utf8', 0, out.used) : undefined;
}
import { python } from '../e2e/python.js';

interface Fixture {
  name: string;
  protocol: number;
  pickle: string;
  /** What the decoder should make of it, as JSON (the Python side's own conversion). */
  expected: unknown;
}

interface Fixtures {
  plain: Fixture[];
  special: Array<{ name: string; protocol: number; pickle: string }>;
  refused: Array<{ name: string; protocol: number; pickle: string; says: string }>;
  record: string;
  recordDict: unknown;
  /** A record with no list or dict among its fields. */
  scalarRecord: string;
}

/** Made once by python3: the pickles (base64) and, for plain data, the JSON they should decode to. */
const MAKE_FIXTURES = String.raw`
import base64, copyreg, datetime, io, json, logging, os, pickle, sys

def as_json(value):
    if isinstance(value, bool) or value is None or isinstance(value, float) or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if -2**53 < value < 2**53 else str(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, (tuple, list, set, frozenset)):
        return [as_json(v) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(k, tuple):
                key = json.dumps(as_json(k), separators=(',', ':'))
            else:
                key = k if isinstance(k, str) else json.dumps(k)
            out[key] = as_json(v)
        return out
    raise TypeError(type(value))

b64 = lambda data: base64.b64encode(data).decode()
values = {
    'none': None, 'true': True, 'false': False,
    'small ints': [0, 1, 255, 256, 65535, 65536, -1, -129, 2**31 - 1, -2**31],
    'ints past 32 bits': [2**31, -2**31 - 1, 2**40, 2**53 - 1, -(2**53 - 1)],
    'big ints': [2**53, 2**63, -2**63 - 1, 2**64, 10**40, -10**40, 2**1000],
    'floats': [0.0, 1.5, -2.25, 1e300, 5e-324, 3.141592653589793, 1700000000.123456],
    'strings': ['', 'plain', 'h\u00e9llo \u20ac \U0001d11e', 'line\nbreak', 'back\\slash', 'tab\tnul\x00', '\u00ff\u0100'],
    'long string': 'x' * 70000,
    'bytes': [b'', b'\x00\xff\x80abc', bytes(range(256))],
    'bytearray': bytearray(b'\x01\x02'),
    'tuples': [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), ((1, 'a'), ())],
    'lists': [[], [1], list(range(2500)), [[1, [2, [3]]]]],
    'dicts': {'a': 1, 'b': {'c': [1, 2]}, 'empty': {}},
    'dict keys': {1: 'int', 2.5: 'float', None: 'none', (1, 'x'): 'tuple', 'str': 'str'},
    'bool keys': {True: 'yes', False: 'no'},
    'many keys': {'k%d' % i: i for i in range(2100)},
    'sets': [set(), {1, 2, 3}, frozenset(['a', 'b'])],
    'shared': (lambda shared: {'one': shared, 'two': shared})(['same']),
    'scalar dict': {'name': 'x', 'n': 1, 'f': 1.5, 'none': None, 't': True, 'caf\u00e9': '\u00fc \u2615', 'big': 2**40, 'neg': -5, 'quote"back\\': 'line\nbreak'},
}
# Before protocol 3 bytes are pickled as a call (_codecs.encode), and before protocol 4 sets (builtins.set).
needs = {'bytes': 3, 'bytearray': 5, 'sets': 4}
plain, special, refused = [], [], []
for protocol in range(6):
    for name, value in values.items():
        if protocol < needs.get(name, 0):
            continue
        plain.append({'name': name, 'protocol': protocol, 'pickle': b64(pickle.dumps(value, protocol)), 'expected': as_json(value)})
    for name, value in [('nan', float('nan')), ('inf', float('inf')), ('-inf', float('-inf'))]:
        special.append({'name': name, 'protocol': protocol, 'pickle': b64(pickle.dumps(value, protocol))})

class System:
    def __reduce__(self):
        return (os.system, ('touch MARKER',))

class Thing:
    def __init__(self):
        self.field = 1

class Slots:
    __slots__ = ('a',)
    def __init__(self):
        self.a = 1
    def __getstate__(self):
        return (None, {'a': self.a})

copyreg.add_extension('collections', 'OrderedDict', 240)
import collections

class Persistent(pickle.Pickler):
    def persistent_id(self, obj):
        return 'id' if obj == 'persist-me' else None

def persisted(protocol):
    out = io.BytesIO()
    Persistent(out, protocol).dump(['persist-me'])
    return out.getvalue()

for protocol in range(6):
    refused.append({'name': 'os.system through reduce', 'protocol': protocol, 'pickle': b64(pickle.dumps(System(), protocol)), 'says': 'system'})
    refused.append({'name': 'a global alone', 'protocol': protocol, 'pickle': b64(pickle.dumps(os.system, protocol)), 'says': 'import'})
    refused.append({'name': 'an instance', 'protocol': protocol, 'pickle': b64(pickle.dumps(Thing(), protocol)), 'says': 'opcode'})
    refused.append({'name': 'state set by BUILD', 'protocol': protocol, 'pickle': b64(pickle.dumps(Slots(), protocol)), 'says': 'opcode'})
    refused.append({'name': 'a datetime', 'protocol': protocol, 'pickle': b64(pickle.dumps(datetime.datetime(2024, 1, 2), protocol)), 'says': 'datetime'})
    refused.append({'name': 'a persistent id', 'protocol': protocol, 'pickle': b64(persisted(protocol)), 'says': 'persistent'})
    if protocol >= 2:
        refused.append({'name': 'an extension code', 'protocol': protocol, 'pickle': b64(pickle.dumps(collections.OrderedDict, protocol)), 'says': 'extension'})
    if protocol < 3:
        refused.append({'name': 'bytes before protocol 3', 'protocol': protocol, 'pickle': b64(pickle.dumps(b'ab', protocol)), 'says': '_codecs.encode'})
    if protocol < 4:
        refused.append({'name': 'a set before protocol 4', 'protocol': protocol, 'pickle': b64(pickle.dumps({1}, protocol)), 'says': 'set'})
buffers = []
refused.append({'name': 'an out-of-band buffer', 'protocol': 5,
                'pickle': b64(pickle.dumps(pickle.PickleBuffer(b'abc'), 5, buffer_callback=buffers.append)), 'says': 'out-of-band'})

# What SocketHandler.makePickle sends for a record with a traceback, non-ASCII text and extra fields.
import logging.handlers
frames = []
class Capture(logging.handlers.SocketHandler):
    def send(self, s):
        frames.append(s)
logger = logging.getLogger('app.db')
logger.propagate = False
handler = Capture('127.0.0.1', 9)
logger.addHandler(handler)
try:
    1 / 0
except ZeroDivisionError:
    logger.exception('caf\u00e9 %s failed', '\u20ac', extra={'user': 'z\u00f6e', 'attempt': 3, 'tags': ['a', 'b']})
logger.warning('plain %s', 'text', extra={'user': 'z\u00f6e'})
frame = frames[0]
assert int.from_bytes(frame[:4], 'big') == len(frame) - 4
record = pickle.loads(frame[4:])
print(json.dumps({'plain': plain, 'special': special, 'refused': refused, 'record': b64(frame), 'recordDict': as_json(record), 'scalarRecord': b64(frames[1])}))
`;

const fixtures = JSON.parse(python(MAKE_FIXTURES)) as Fixtures;
const bytes = (b64: string) => Buffer.from(b64, 'base64');


describe('unpickle', () => {
  it.each(fixtures.plain.map((f) => [`${f.name}, protocol ${f.protocol}`, f] as const))('decodes %s as python3 made it', (_name, fixture) => {
    expect(unpickle(bytes(fixture.pickle))).toEqual(fixture.expected);
  });

  it('decodes NaN and the infinities in every protocol', () => {
    for (const { name, protocol, pickle } of fixtures.special) {
      const expected = name === 'nan' ? NaN : name === 'inf' ? Infinity : -Infinity;
      expect(unpickle(bytes(pickle)), `${name}, protocol ${protocol}`).toBe(expected);
    }
  });

  it('keeps integers past 2^53 whole, as their digits', () => {
    const big = fixtures.plain.find((f) => f.name === 'big ints' && f.protocol === 5)!;
    expect(unpickle(bytes(big.pickle))).toContain('18446744073709551616');
    expect(unpickle(bytes(big.pickle))).toContain((2n ** 1000n).toString());
  });

  it("decodes a SocketHandler record: every field, in Python's key order", () => {
    const frame = bytes(fixtures.record);
    expect(frame.readUInt32BE(0)).toBe(frame.length - 4);
    const record = unpickle(frame.subarray(4)) as Record<string, unknown>;
    expect(record).toEqual(fixtures.recordDict);
    expect(Object.keys(record)).toEqual(Object.keys(fixtures.recordDict as object));
    expect(record).toMatchObject({ name: 'app.db', msg: 'café € failed', args: null, levelname: 'ERROR', user: 'zöe', attempt: 3, tags: ['a', 'b'] });
    expect(record.exc_text).toMatch(/ZeroDivisionError: division by zero$/);
  });

  it.each(fixtures.refused.map((f) => [`${f.name}, protocol ${f.protocol}`, f] as const))('refuses %s', (_name, fixture) => {
    let error: unknown;
    try {
      unpickle(bytes(fixture.pickle));
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(UnpickleError);
    expect((error as Error).message).toContain(fixture.says);
    expect((error as Error).message).toMatch(/^refused opcode [A-Z_0-9]+: it would .*; only plain data is accepted/);
  });

  it('names the function a reduce would call', () => {
    const system = fixtures.refused.find((f) => f.name === 'os.system through reduce' && f.protocol === 4)!;
    expect(() => unpickle(bytes(system.pickle))).toThrow(/refused opcode STACK_GLOBAL: it would import posix\.system; only plain data is accepted/);
    const old = fixtures.refused.find((f) => f.name === 'os.system through reduce' && f.protocol === 0)!;
    expect(() => unpickle(bytes(old.pickle))).toThrow(/refused opcode GLOBAL: it would import posix\.system/);
  });

  it('refuses a cycle, which JSON cannot hold', () => {
    const cycle = python('import pickle, sys\nl = []\nl.append(l)\nsys.stdout.write(pickle.dumps(l, 2).hex())');
    expect(() => unpickle(Buffer.from(cycle, 'hex'))).toThrow(/holds itself/);
  });

  it('refuses shared references that expand past the budget (billion laughs), quickly', () => {
    // A list of ten references to the previous list, thirty times: 10^30 values once written out.
    const parts = [0x80, 2, 0x5d, 0x71, 0, 0x30];
    for (let level = 1; level <= 30; level++) parts.push(0x28, ...Array.from({ length: 10 }, () => [0x68, level - 1]).flat(), 0x6c, 0x71, level, 0x30);
    parts.push(0x68, 30, 0x2e);
    expect(() => unpickle(Buffer.from(parts))).toThrow(/expand/);
    // A long string referenced again and again.
    const text = Buffer.alloc(100_000, 0x61);
    const head = Buffer.from([0x80, 2, 0x58, 0, 0, 0, 0]);
    head.writeUInt32LE(text.length, 3);
    const bomb = Buffer.concat([head, text, Buffer.from([0x71, 0, 0x28]), Buffer.alloc(2 * 20_000).fill(Buffer.from([0x68, 0])), Buffer.from([0x6c, 0x2e])]);
    expect(() => unpickle(bomb)).toThrow(/expand/);
  });

  it('accepts shared references within the budget', () => {
    const shared = fixtures.plain.find((f) => f.name === 'shared' && f.protocol === 2)!;
    expect(unpickle(bytes(shared.pickle))).toEqual({ one: ['same'], two: ['same'] });
  });

  it('refuses nesting deeper than 1000', () => {
    const depth = 100_000;
    const deep = Buffer.concat([Buffer.from([0x80, 2]), Buffer.alloc(depth, 0x5d), Buffer.alloc(depth - 1, 0x61), Buffer.from([0x2e])]);
    expect(() => unpickle(deep)).toThrow(/nested more than 1000 deep/);
  });

  it('refuses an integer too long to be text, before building it', () => {
    const huge = Buffer.concat([Buffer.from([0x80, 2, 0x8b, 0x40, 0x42, 0x0f, 0x00]), Buffer.alloc(1_000_000, 0x7f), Buffer.from([0x2e])]);
    expect(() => unpickle(huge)).toThrow(/integer of 1000000 bytes/);
  });

  it('a "__proto__" key is an own property, never the prototype', () => {
    const pickle = python('import pickle, sys\nsys.stdout.write(pickle.dumps({"__proto__": {"polluted": 1}}, 2).hex())');
    const value = unpickle(Buffer.from(pickle, 'hex')) as Record<string, unknown>;
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect((value as { polluted?: unknown }).polluted).toBeUndefined();
    expect(JSON.stringify(value)).toBe('{"__proto__":{"polluted":1}}');
  });

  it('every cut of a record is an UnpickleError that says the pickle is cut short', () => {
    const pickle = bytes(fixtures.record).subarray(4);
    for (let end = 0; end < pickle.length; end++) {
      expect(() => unpickle(pickle.subarray(0, end)), `cut at ${end}`).toThrow(UnpickleError);
    }
    expect(() => unpickle(pickle.subarray(0, pickle.length - 1))).toThrow(/cut short/);
  });

  it('bytes after STOP are refused', () => {
    expect(() => unpickle(Buffer.from([0x4e, 0x2e, 0x4e]))).toThrow(/1 bytes after the end of the pickle/);
  });

  it('random bytes only ever give data or an UnpickleError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (data) => {
        try {
          unpickle(data);
        } catch (error) {
          if (!(error instanceof UnpickleError)) throw error;
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('random mutations of a record only ever give data or an UnpickleError', () => {
    const pickle = bytes(fixtures.record).subarray(4);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(pickle.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), (changes) => {
        const copy = Buffer.from(pickle);
        for (const [at, value] of changes) copy[at] = value;
        try {
          unpickle(copy);
        } catch (error) {
          if (!(error instanceof UnpickleError)) throw error;
        }
      }),
      { numRuns: 3000 },
    );
  });
});

describe('pickleProtocol1', () => {
  const sample = {
    name: 'app.db',
    msg: 'café € failed',
    args: null,
    levelno: 40,
    lineno: 70000,
    process: 123456789,
    thread: 140234567890688,
    negative: -129,
    created: 1700000000.5,
    ok: true,
    no: false,
    list: [1, 'two', [3.5]],
    many: Array.from({ length: 1500 }, (_, i) => i),
    nested: { inner: 'text' },
  };

  it("writes the bytes Python's pickle.dumps(value, 1) writes", () => {
    const expected = python("import json, pickle, sys\nsys.stdout.write(pickle.dumps(json.loads(sys.stdin.read()), 1).hex())", Buffer.from(JSON.stringify(sample)));
    expect(pickleProtocol1(sample).toString('hex')).toBe(expected);
  });

  it('python3 loads what it writes, and so does unpickle', () => {
    const extra = { ...sample, big: 2n ** 70n, empty: {}, unicode: 'h\u00e9llo \u{1d11e}', when: new Date(0), skip: undefined };
    const encoded = pickleProtocol1(extra);
    const loaded = python("import json, pickle, sys\nv = pickle.loads(sys.stdin.buffer.read())\nv['big'] = str(v['big'])\nsys.stdout.write(json.dumps(v))", encoded);
    const expected = { ...sample, big: (2n ** 70n).toString(), empty: {}, unicode: 'h\u00e9llo \u{1d11e}', when: '1970-01-01T00:00:00.000Z' };
    expect(JSON.parse(loaded)).toEqual(expected);
    expect(unpickle(encoded)).toEqual(expected);
  });

  it('refuses a value that holds itself', () => {
    const loop: Record<string, unknown> = {};
    loop.self = loop;
    expect(() => pickleProtocol1(loop)).toThrow(/holds itself/);
  });
});

describe('pickleJson, the shortcut for dicts of scalars', () => {
  /** The shortcut's text is JSON.stringify of what the general unpickler makes, byte for byte, whenever it answers. */
  const agrees = (pickle: Buffer): string | undefined => {
    const text = pickleJson(pickle);
    if (text !== undefined) expect(text).toBe(JSON.stringify(unpickleGeneral(pickle)));
    return text;
  };

  it("takes SocketHandler's records", () => {
    expect(agrees(bytes(fixtures.scalarRecord).subarray(4))).toMatch(/^\{"name":"app\.db","msg":"plain text",.*,"user":"zöe"\}$/);
    // A field holding a list takes the long way.
    expect(agrees(bytes(fixtures.record).subarray(4))).toBeUndefined();
  });

  it('agrees with the general unpickler on every python3 fixture it takes, and leaves the rest', () => {
    let taken = 0;
    for (const fixture of fixtures.plain) if (agrees(bytes(fixture.pickle)) !== undefined) taken++;
    expect(fixtures.plain.filter((f) => f.name === 'scalar dict' && pickleJson(bytes(f.pickle)) !== undefined).map((f) => f.protocol)).toEqual([1]);
    expect(taken).toBeGreaterThan(0);
    // Nested containers, big ints and text opcodes take the long way.
    const nested = fixtures.plain.find((f) => f.name === 'dicts' && f.protocol === 2)!;
    expect(pickleJson(bytes(nested.pickle))).toBeUndefined();
  });

  it('agrees on random dicts of scalars: any keys and strings (escapes, non-ASCII, long ones), numbers of every size', () => {
    const scalar = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 80 }),
      fc.string({ maxLength: 5 }),
      fc.integer(),
      fc.maxSafeInteger(),
      fc.double(),
      fc.boolean(),
      fc.constant(null),
    );
    fc.assert(
      fc.property(fc.dictionary(fc.oneof(fc.string({ unit: 'binary', maxLength: 12 }), fc.constantFrom('__proto__', '1', '01', 'name')), scalar, { maxKeys: 30 }), (record) => {
        agrees(pickleProtocol1(record));
      }),
      { numRuns: 3000 },
    );
  });

  it('random mutations of a record give the same text as the long way, or leave it to the long way', () => {
    const pickle = bytes(fixtures.scalarRecord).subarray(4);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(pickle.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), (changes) => {
        const copy = Buffer.from(pickle);
        for (const [at, value] of changes) copy[at] = value;
        let general: string | undefined;
        try {
          general = JSON.stringify(unpickleGeneral(copy));
        } catch (error) {
          if (!(error instanceof UnpickleError)) throw error;
        }
        const text = pickleJson(copy);
        if (text !== undefined) expect(text).toBe(general);
      }),
      { numRuns: 5000 },
    );
  });

  it('leaves a repeated key to the general unpickler (the last value wins, in the place of the first)', () => {
    // {}, MARK, "a": 1, "b": 2, "a": 3, SETITEMS, STOP
    const key = (k: string) => [0x58, 1, 0, 0, 0, k.charCodeAt(0)];
    const pickle = Buffer.from([0x7d, 0x28, ...key('a'), 0x4b, 1, ...key('b'), 0x4b, 2, ...key('a'), 0x4b, 3, 0x75, 0x2e]);
    expect(pickleJson(pickle)).toBeUndefined();
    expect(JSON.stringify(unpickle(pickle))).toBe('{"a":3,"b":2}');
  });

  it('a PUT with no value before it (after MARK) is refused by both', () => {
    const pickle = Buffer.from([0x7d, 0x28, 0x71, 0, 0x58, 1, 0, 0, 0, 0x61, 0x68, 0, 0x75, 0x2e]);
    expect(pickleJson(pickle)).toBeUndefined();
    expect(() => unpickle(pickle)).toThrow(/stack \(past the last MARK\) is empty/);
  });

  it('bytes that are not UTF-8 become U+FFFD, as in the general path', () => {
    const pickle = Buffer.from([0x7d, 0x58, 1, 0, 0, 0, 0x6b, 0x58, 3, 0, 0, 0, 0x61, 0xff, 0x62, 0x73, 0x2e]);
    expect(agrees(pickle)).toBe('{"k":"a\uFFFDb"}');
  });
});
