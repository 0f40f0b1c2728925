// Property: whatever bytes come in, every non-empty line is accounted for (out, dropped or an
// error record) and the good messages keep their order.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { run, tempDir } from './helpers.js';
import { badLine as bad, buildLines, bytesLine, emptyLine as empty, goodLine, longLine } from './random-lines.js';

const dir = tempDir();
// Drops messages marked drop; wraps the rest so that a decoded null passes on as a message.
writeFileSync(join(dir, 'drop.mjs'), 'export default (m) => (m !== null && typeof m === "object" && m.drop === true ? undefined : [m]);\n');

const good = goodLine();
const bytes = bytesLine();
const long = longLine();

// A loaded machine runs fewer cases rather than time out, and a failure found is reported with
// the counterexample shrunk so far rather than lost to the test's timeout.
const budget = { interruptAfterTimeLimit: 40_000 };

const outputLines = (stdout: string) => stdout.split('\n').slice(0, -1);
const errorRecords = (stderr: string) => stderr.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { error: string });

describe.concurrent('every line is accounted for', () => {
  it('JSON in and out, with a filter that drops some: lines in = out + dropped + errors, good order kept', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(good, good, bad, empty, bytes), { minLength: 1, maxLength: 60 }), fc.boolean(), async (lineList, lastWithoutLF) => {
        const { input, contents, goods } = buildLines(lineList, lastWithoutLF);
        const { code, stdout, stderr } = await run(['--filter', './drop.mjs', '--stats', '60'], { input, cwd: dir });
        expect(code, stderr).toBe(0);
        const [stats, ...rest] = stderr.split('\n').reverse().filter((l) => l !== '');
        const records = errorRecords(rest.reverse().join('\n'));
        const nonEmpty = contents.filter((c) => c.length > 0).length;
        const out = outputLines(stdout);
        const dropped = goods.filter((g) => g.drop).length;
        expect(out.length + dropped + records.length).toBe(nonEmpty);
        expect(stats).toContain(`in=${nonEmpty} created=0 out=${out.length} dropped=${dropped} errors=${records.length} `);
        const ids = out.map((l) => JSON.parse(l) as unknown).flatMap((m) => (m !== null && typeof m === 'object' && 'id' in m ? [(m as { id: number }).id] : []));
        expect(ids).toEqual(goods.filter((g) => !g.drop).map((g) => g.id));
      }),
      { numRuns: 24, ...budget },
    );
  });

  it('JSON with a small max_line_length: long lines become over-long records, nothing else changes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(good.map((g) => ({ ...g, text: g.text.slice(0, 20) })), long, empty, bad), { minLength: 1, maxLength: 40 }), fc.boolean(), async (lineList, lastWithoutLF) => {
        const { input, goods } = buildLines(lineList, lastWithoutLF);
        const { code, stdout, stderr } = await run(['--input_options', '{max_line_length: 200}'], { input });
        expect(code, stderr).toBe(0);
        const records = errorRecords(stderr);
        expect(records.filter((r) => r.error === 'over-long')).toHaveLength(lineList.filter((l) => l.kind === 'long').length);
        expect(records.filter((r) => r.error === 'decode')).toHaveLength(lineList.filter((l) => l.kind === 'bad').length);
        expect(outputLines(stdout).map((l) => (JSON.parse(l) as { id: number }).id)).toEqual(goods.map((g) => g.id));
      }),
      { numRuns: 12, ...budget },
    );
  });

  it('Null in and out: every non-empty line comes out byte for byte, in order', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(good, bad, empty, bytes, bytes), { minLength: 1, maxLength: 60 }), fc.boolean(), async (lineList, lastWithoutLF) => {
        const { input, contents } = buildLines(lineList, lastWithoutLF);
        const { code, stdout, stderr } = await run(['--decoder', 'Null', '--encoder', 'Null'], { input });
        expect(code, stderr).toBe(0);
        expect(stderr).toBe('');
        const expected = Buffer.concat(contents.filter((c) => c.length > 0).flatMap((c) => [c, Buffer.from('\n')]));
        // stdout was read as UTF-8: compare the same way.
        expect(stdout).toBe(expected.toString('utf8'));
      }),
      { numRuns: 12, ...budget },
    );
  });
});
