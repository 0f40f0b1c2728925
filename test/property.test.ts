// Property: whatever bytes come in, every non-empty line is accounted for (out, dropped or an
// error record) and the good messages keep their order.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { run, tempDir } from './helpers.js';

const dir = tempDir();
// Drops messages marked drop; wraps the rest so that a decoded null passes on as a message.
writeFileSync(join(dir, 'drop.mjs'), 'export default (m) => (m !== null && typeof m === "object" && m.drop === true ? undefined : [m]);\n');

const LF = 0x0a;
const CR = 0x0d;

type Line =
  | { kind: 'good'; drop: boolean; text: string; crlf: boolean }
  | { kind: 'bad'; text: string; crlf: boolean }
  | { kind: 'empty'; crlf: boolean }
  | { kind: 'bytes'; bytes: Uint8Array; crlf: boolean }
  | { kind: 'long'; length: number; crlf: boolean };

const good = fc.record({
  kind: fc.constant('good' as const),
  drop: fc.boolean(),
  text: fc.oneof(fc.string({ unit: 'binary', maxLength: 30 }), fc.string({ maxLength: 2000 })),
  crlf: fc.boolean(),
});
const bad = fc.record({ kind: fc.constant('bad' as const), text: fc.string({ unit: 'binary', maxLength: 30 }).map((s) => s.replace(/[\n\r]/g, ' ')), crlf: fc.boolean() });
const empty = fc.record({ kind: fc.constant('empty' as const), crlf: fc.boolean() });
// Any bytes but LF: invalid UTF-8, stray CRs, NULs, sometimes valid JSON by chance.
const bytes = fc.record({
  kind: fc.constant('bytes' as const),
  bytes: fc.uint8Array({ maxLength: 40 }).map((b) => b.map((x) => (x === LF ? 0x20 : x))),
  crlf: fc.boolean(),
});
const long = fc.record({ kind: fc.constant('long' as const), length: fc.integer({ min: 300, max: 5000 }), crlf: fc.boolean() });

/** The input bytes, each line's own bytes (CR removed as the contract says), and the good ones by id. */
function build(lineList: Line[], lastWithoutLF: boolean) {
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

const outputLines = (stdout: string) => stdout.split('\n').slice(0, -1);
const errorRecords = (stderr: string) => stderr.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { error: string });

describe.concurrent('every line is accounted for', () => {
  it('JSON in and out, with a filter that drops some: lines in = out + dropped + errors, good order kept', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(good, good, bad, empty, bytes), { minLength: 1, maxLength: 60 }), fc.boolean(), async (lineList, lastWithoutLF) => {
        const { input, contents, goods } = build(lineList, lastWithoutLF);
        const { code, stdout, stderr } = await run(['--filter', './drop.mjs', '--stats', '60'], { input, cwd: dir });
        expect(code).toBe(0);
        const [stats, ...rest] = stderr.split('\n').reverse().filter((l) => l !== '');
        const records = errorRecords(rest.reverse().join('\n'));
        const nonEmpty = contents.filter((c) => c.length > 0).length;
        const out = outputLines(stdout);
        const dropped = goods.filter((g) => g.drop).length;
        expect(out.length + dropped + records.length).toBe(nonEmpty);
        expect(stats).toContain(`in=${nonEmpty} out=${out.length} dropped=${dropped} errors=${records.length} `);
        const ids = out.map((l) => JSON.parse(l) as unknown).flatMap((m) => (m !== null && typeof m === 'object' && 'id' in m ? [(m as { id: number }).id] : []));
        expect(ids).toEqual(goods.filter((g) => !g.drop).map((g) => g.id));
      }),
      { numRuns: 24 },
    );
  });

  it('JSON with a small max_line_length: long lines become over-long records, nothing else changes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(good.map((g) => ({ ...g, text: g.text.slice(0, 20) })), long, empty, bad), { minLength: 1, maxLength: 40 }), fc.boolean(), async (lineList, lastWithoutLF) => {
        const { input, goods } = build(lineList, lastWithoutLF);
        const { code, stdout, stderr } = await run(['--input_options', '{max_line_length: 200}'], { input });
        expect(code).toBe(0);
        const records = errorRecords(stderr);
        expect(records.filter((r) => r.error === 'over-long')).toHaveLength(lineList.filter((l) => l.kind === 'long').length);
        expect(records.filter((r) => r.error === 'decode')).toHaveLength(lineList.filter((l) => l.kind === 'bad').length);
        expect(outputLines(stdout).map((l) => (JSON.parse(l) as { id: number }).id)).toEqual(goods.map((g) => g.id));
      }),
      { numRuns: 12 },
    );
  });

  it('Null in and out: every non-empty line comes out byte for byte, in order', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(good, bad, empty, bytes, bytes), { minLength: 1, maxLength: 60 }), fc.boolean(), async (lineList, lastWithoutLF) => {
        const { input, contents } = build(lineList, lastWithoutLF);
        const { code, stdout, stderr } = await run(['--decoder', 'Null', '--encoder', 'Null'], { input });
        expect(code).toBe(0);
        expect(stderr).toBe('');
        const expected = Buffer.concat(contents.filter((c) => c.length > 0).flatMap((c) => [c, Buffer.from('\n')]));
        // stdout was read as UTF-8: compare the same way.
        expect(stdout).toBe(expected.toString('utf8'));
      }),
      { numRuns: 12 },
    );
  });
});
