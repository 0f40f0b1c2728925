// Which of N endpoints a key goes to: jump consistent hash (Lamping and Veach,
// "A Fast, Minimal Memory, Consistent Hash Algorithm", 2014) of the 64-bit
// FNV-1a hash of the key's UTF-8 bytes. Both are standard, so a producer
// written in another language can place keys the same way. Growing the list
// from N to N+1 endpoints moves about 1/(N+1) of the keys, all of them to the
// new endpoint; placement depends only on the key and the number of endpoints.
//
// 64-bit arithmetic is done on two unsigned 32-bit halves: BigInt costs about
// a microsecond per key, more than everything else an output does per message.

const TWO_32 = 4294967296;

/** FNV-1a 64-bit hash of the UTF-8 bytes of `text`, as [high, low] unsigned 32-bit halves. */
export function fnv1a64(text: string): [number, number] {
  // Signed 32-bit locals with the mixing written out in the loop: a closure over
  // them stored each as a heap number and cost 20 times as much.
  let hi = 0xcbf29ce4 | 0;
  let lo = 0x84222325 | 0;
  for (let i = 0; i < text.length; i++) {
    let code = text.charCodeAt(i);
    let count = 1;
    let b0 = code;
    let b1 = 0;
    let b2 = 0;
    let b3 = 0;
    if (code >= 0x80) {
      if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
        const next = text.charCodeAt(i + 1);
        if (next >= 0xdc00 && next <= 0xdfff) {
          code = 0x10000 + ((code - 0xd800) << 10) + (next - 0xdc00);
          i++;
        }
      }
      // A lone surrogate is encoded as U+FFFD, as Buffer.from(text) does.
      if (code >= 0xd800 && code <= 0xdfff) code = 0xfffd;
      if (code < 0x800) {
        count = 2;
        b0 = 0xc0 | (code >> 6);
        b1 = 0x80 | (code & 0x3f);
      } else if (code < 0x10000) {
        count = 3;
        b0 = 0xe0 | (code >> 12);
        b1 = 0x80 | ((code >> 6) & 0x3f);
        b2 = 0x80 | (code & 0x3f);
      } else {
        count = 4;
        b0 = 0xf0 | (code >> 18);
        b1 = 0x80 | ((code >> 12) & 0x3f);
        b2 = 0x80 | ((code >> 6) & 0x3f);
        b3 = 0x80 | (code & 0x3f);
      }
    }
    for (let k = 0; k < count; k++) {
      lo ^= k === 0 ? b0 : k === 1 ? b1 : k === 2 ? b2 : b3;
      // The prime is 2^40 + 0x1b3. lo * 0x1b3 is taken in 16-bit limbs so that every step stays a small integer;
      // lo * 2^40 lands in the high half as lo << 8.
      const low = (lo & 0xffff) * 0x1b3;
      const mid = (low >>> 16) + ((lo >>> 16) * 0x1b3);
      hi = (Math.imul(hi, 0x1b3) + (mid >>> 16) + (lo << 8)) | 0;
      lo = (mid << 16) | (low & 0xffff);
    }
  }
  return [hi >>> 0, lo >>> 0];
}

/** The jump hash's multiplier, 2862933555777941757, in halves and 16-bit limbs of its low half. */
const MUL_HI = 0x27bb2ee6;
const MUL_LO = 0x87b0b0fd;
const MUL_LO_1 = MUL_LO >>> 16;
const MUL_LO_0 = MUL_LO & 0xffff;

/** Jump consistent hash: the bucket, in [0, buckets), of the 64-bit key [hi, lo]. */
export function jumpHash(hi: number, lo: number, buckets: number): number {
  if (!Number.isInteger(buckets) || buckets < 1) throw new RangeError(`buckets must be a positive integer, got ${buckets}`);
  let b = -1;
  let j = 0;
  while (j < buckets) {
    b = j;
    // key = key * MUL + 1 (mod 2^64); lo * MUL_LO needs all 64 bits, so it is taken in 16-bit limbs.
    const lo1 = lo >>> 16;
    const lo0 = lo & 0xffff;
    const mid = lo0 * MUL_LO_1 + lo1 * MUL_LO_0;
    const low = lo0 * MUL_LO_0 + (mid % 0x10000) * 0x10000;
    const carry = lo1 * MUL_LO_1 + Math.floor(mid / 0x10000) + Math.floor(low / TWO_32);
    hi = (Math.imul(hi, MUL_LO) + Math.imul(lo, MUL_HI) + carry) >>> 0;
    lo = low >>> 0;
    // + 1, carried into the high half when the low half wraps.
    lo = (lo + 1) >>> 0;
    if (lo === 0) hi = (hi + 1) >>> 0;
    // (key >> 33) is the high half's top 31 bits; the same floating-point steps as the reference, so the same buckets.
    j = Math.floor((b + 1) * (2147483648 / ((hi >>> 1) + 1)));
  }
  return b;
}

/** The index, in [0, count), of the endpoint that `key` goes to. */
export function partitionOf(key: string, count: number): number {
  if (count === 1) return 0;
  const [hi, lo] = fnv1a64(key);
  return jumpHash(hi, lo, count);
}
