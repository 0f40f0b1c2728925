import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fnv1a64, jumpHash, partitionOf } from '../../src/io/partition.js';

const MASK = (1n << 64n) - 1n;

/** The published algorithms written plainly with BigInt: what the 32-bit halves must agree with. */
function referenceFnv(text: string): bigint {
  let hash = 0xcbf29ce484222325n;
  for (const byte of Buffer.from(text, 'utf8')) hash = ((hash ^ BigInt(byte)) * 0x100000001b3n) & MASK;
  return hash;
}

function referenceJump(key: bigint, buckets: number): number {
  let b = -1;
  let j = 0;
  while (j < buckets) {
    b = j;
    key = (key * 2862933555777941757n + 1n) & MASK;
    j = Math.floor((b + 1) * (2 ** 31 / (Number(key >> 33n) + 1)));
  }
  return b;
}

const asBigInt = ([hi, lo]: [number, number]) => (BigInt(hi) << 32n) | BigInt(lo);
const keys = (count: number) => Array.from({ length: count }, (_, i) => `/var/log/app/host-${i % 97}/service-${i}.log`);

describe('fnv1a64', () => {
  it('gives the published FNV-1a 64 test vectors', () => {
    expect(asBigInt(fnv1a64(''))).toBe(0xcbf29ce484222325n);
    expect(asBigInt(fnv1a64('a'))).toBe(0xaf63dc4c8601ec8cn);
    expect(asBigInt(fnv1a64('foobar'))).toBe(0x85944171f73967e8n);
  });

  it('hashes the UTF-8 bytes of any text, lone surrogates as U+FFFD like Buffer.from', () => {
    expect(asBigInt(fnv1a64('héllo ✓ 😀'))).toBe(0xd4d14351d547f188n);
    for (const text of ['\ud800', 'a\udc00b', '😀\ud83d', '\u07ff\u0800\uffff']) {
      expect(asBigInt(fnv1a64(text)), JSON.stringify(text)).toBe(referenceFnv(text));
    }
    // Any UTF-16 code units, lone surrogates included (fast-check's own unicode strings are slow to make).
    const anyText = fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 40 }).map((units) => String.fromCharCode(...units));
    fc.assert(
      fc.property(anyText, (text) => asBigInt(fnv1a64(text)) === referenceFnv(text)),
      { numRuns: 1000 },
    );
  });
});

describe('jumpHash', () => {
  it('agrees with the reference algorithm on 64-bit keys', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: MASK }), fc.integer({ min: 1, max: 5000 }), (key, buckets) => {
        const hi = Number(key >> 32n);
        const lo = Number(key & 0xffffffffn);
        return jumpHash(hi, lo, buckets) === referenceJump(key, buckets);
      }),
      { numRuns: 2000 },
    );
  });

  it('places keys as an independent implementation (Python integers) does', () => {
    // Computed with Python's arbitrary-precision integers from the paper's C code.
    const expected: Record<string, number[]> = {
      '': [0, 1, 1, 1, 1, 90, 266],
      a: [0, 1, 2, 2, 2, 31, 163],
      foobar: [0, 1, 1, 1, 5, 33, 635],
      '/var/log/app-1.log': [0, 0, 0, 0, 7, 7, 885],
      'héllo ✓ 😀': [0, 0, 0, 3, 9, 51, 606],
    };
    for (const [key, buckets] of Object.entries(expected)) {
      expect([1, 2, 3, 5, 10, 100, 1000].map((n) => partitionOf(key, n)), key).toEqual(buckets);
    }
  });

  it('refuses a bucket count that is not a positive integer', () => {
    expect(() => jumpHash(0, 0, 0)).toThrow(RangeError);
    expect(() => jumpHash(0, 0, 1.5)).toThrow(RangeError);
  });
});

describe('partitionOf', () => {
  it('is stable: the same key always goes to the same endpoint, whatever came before', () => {
    const all = keys(2000);
    const first = all.map((key) => partitionOf(key, 5));
    const again = [...all].reverse().map((key) => partitionOf(key, 5)).reverse();
    expect(again).toEqual(first);
    for (const placed of first) expect(placed >= 0 && placed < 5).toBe(true);
  });

  it('balances keys over the endpoints', () => {
    const all = keys(20_000);
    for (const count of [2, 3, 4, 7, 10]) {
      const load = new Array<number>(count).fill(0);
      for (const key of all) load[partitionOf(key, count)]!++;
      const expected = all.length / count;
      for (const share of load) expect(Math.abs(share - expected) / expected, `${count} endpoints: ${load.join(', ')}`).toBeLessThan(0.06);
    }
  });

  it('adding an endpoint at the end moves about 1/N of the keys, all to the new one', () => {
    const all = keys(10_000);
    for (let count = 1; count < 10; count++) {
      let moved = 0;
      for (const key of all) {
        const before = partitionOf(key, count);
        const after = partitionOf(key, count + 1);
        if (after !== before) {
          moved++;
          expect(after, key).toBe(count);
        }
      }
      const share = moved / all.length;
      expect(Math.abs(share - 1 / (count + 1)), `${count} -> ${count + 1}: moved ${moved}`).toBeLessThan(0.02);
    }
  });
});
