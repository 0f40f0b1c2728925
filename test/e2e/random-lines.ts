// The random-line model of the property tests: lines of several kinds, each with LF or CR LF,
// and the input they make together with what the contract says each line holds once framed.
import fc from 'fast-check';

export const LF = 0x0a;
export const CR = 0x0d;

export type Line =
  | { kind: 'good'; drop: boolean; text: string; crlf: boolean }
  | { kind: 'bad'; text: string; crlf: boolean }
  | { kind: 'empty'; crlf: boolean }
  | { kind: 'bytes'; bytes: Uint8Array; crlf: boolean }
  | { kind: 'long'; length: number; crlf: boolean };

/**
 * A JSON message, some marked drop. With `bigLength`, now and then one of that many
 * characters (one big ZeroMQ frame among small ones).
 */
export function goodLine(bigLength?: number) {
  const small = fc.string({ unit: 'binary', maxLength: 30 });
  const medium = fc.string({ maxLength: 2000 });
  return fc.record({
    kind: fc.constant('good' as const),
    drop: fc.boolean(),
    text:
      bigLength === undefined
        ? fc.oneof(small, medium)
        : fc.oneof({ weight: 6, arbitrary: small }, { weight: 3, arbitrary: medium }, { weight: 1, arbitrary: fc.constant('y'.repeat(bigLength)) }),
    crlf: fc.boolean(),
  });
}

/** Text that is not JSON. */
export const badLine = fc.record({ kind: fc.constant('bad' as const), text: fc.string({ unit: 'binary', maxLength: 30 }).map((s) => s.replace(/[\n\r]/g, ' ')), crlf: fc.boolean() });

export const emptyLine = fc.record({ kind: fc.constant('empty' as const), crlf: fc.boolean() });

/**
 * Any bytes but LF: invalid UTF-8, stray CRs, NULs, sometimes valid JSON by chance. With
 * `endingInCR`, also bytes that are not UTF-8 and end in CR: with CR LF after them, one CR
 * stays in the line.
 */
export function bytesLine(endingInCR = false) {
  const anyButLF = fc.uint8Array({ maxLength: 40 }).map((b) => b.map((x) => (x === LF ? 0x20 : x)));
  return fc.record({
    kind: fc.constant('bytes' as const),
    bytes: endingInCR
      ? fc.oneof(anyButLF, fc.uint8Array({ maxLength: 10 }).map((b) => Uint8Array.from([...b.map((x) => (x === LF ? 0x20 : x)), 0xff, CR])))
      : anyButLF,
    crlf: fc.boolean(),
  });
}

/**
 * A line of 300 to 5000 bytes. With `maxLine` (the input's max_line_length), rarely one
 * past it (an over-long record where it is read).
 */
export function longLine(maxLine?: number) {
  const length = fc.integer({ min: 300, max: 5000 });
  return fc.record({
    kind: fc.constant('long' as const),
    length: maxLine === undefined ? length : fc.oneof({ weight: 5, arbitrary: length }, { weight: 1, arbitrary: fc.constant(maxLine + 10) }),
    crlf: fc.boolean(),
  });
}

/** The input bytes, each line's content once framed (one CR at its end removed), and the good ones by id. */
export function buildLines(lineList: Line[], lastWithoutLF: boolean) {
  const parts: Buffer[] = [];
  const contents: Buffer[] = [];
  const goods: Array<{ id: number; drop: boolean }> = [];
  lineList.forEach((line, id) => {
    let body: Buffer;
    if (line.kind === 'good') {
      body = Buffer.from(JSON.stringify({ id, drop: line.drop, text: line.text }));
      goods.push({ id, drop: line.drop });
    } else if (line.kind === 'bad') body = Buffer.from(`not json ${line.text}`);
    else if (line.kind === 'empty') body = Buffer.alloc(0);
    else if (line.kind === 'bytes') body = Buffer.from(line.bytes);
    else body = Buffer.alloc(line.length, 'x');
    const last = id === lineList.length - 1;
    const ending = last && lastWithoutLF ? '' : line.crlf ? '\r\n' : '\n';
    parts.push(body, Buffer.from(ending));
    // What the line holds once framed: one CR at its end is removed (also on a last line without LF).
    const framed = ending === '\r\n' ? Buffer.concat([body, Buffer.from([CR])]) : body;
    contents.push(framed.length > 0 && framed[framed.length - 1] === CR ? framed.subarray(0, -1) : framed);
  });
  return { input: Buffer.concat(parts), contents, goods };
}
