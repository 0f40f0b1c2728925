// File rotation by size and by time, against real files in a temporary folder,
// with a hand-driven clock: every line ends up in exactly one file, whole, in order.
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { parseRotation, Rotation, timeSuffix, type RotatedFile } from '../../src/common/rotation.js';

const root = mkdtempSync(join(tmpdir(), 'mp-rotation-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let folders = 0;
const folder = () => mkdtempSync(join(root, `case-${++folders}-`));

/** A RotatedFile on plain synchronous file calls, counting opens and closes. */
function plainFile(): RotatedFile & { closes: number } {
  return {
    closes: 0,
    async open(path) {
      if (!existsSync(path)) writeFileSync(path, '');
      const info = statSync(path);
      return { size: info.size, mtimeMs: info.mtimeMs };
    },
    async write(path, data) {
      appendFileSync(path, data);
    },
    async close() {
      this.closes++;
    },
  };
}

const read = (path: string) => (path.endsWith('.gz') ? gunzipSync(readFileSync(path)).toString() : readFileSync(path, 'utf8'));

/** Every file of `name` in `dir`, oldest first for numbered rotation (NAME.N ... NAME.1, NAME). */
function numberedOldestFirst(dir: string, name: string): string[] {
  const numbered = readdirSync(dir)
    .filter((f) => f.startsWith(`${name}.`))
    .map((f) => ({ f, n: Number(f.slice(name.length + 1).replace(/\.gz$/, '')) }))
    .sort((a, b) => b.n - a.n)
    .map(({ f }) => join(dir, f));
  return [...numbered, join(dir, name)];
}

const lineOf = (i: number) => `{"n":${i},"pad":"${'x'.repeat(i % 7)}"}\n`;

describe('parseRotation', () => {
  it('takes max_bytes as a size and when as "midnight" or a duration', () => {
    expect(parseRotation({ max_bytes: '10MiB' }, 7, false)).toEqual({ by: 'size', maxBytes: 10 << 20, keep: 7, compress: false });
    expect(parseRotation({ when: 'midnight' }, 3, true)).toEqual({ by: 'time', every: 86_400_000, keep: 3, compress: true });
    expect(parseRotation({ when: '1h' }, 7, false)).toMatchObject({ by: 'time', every: 3_600_000 });
  });

  it('says what is wrong with anything else', () => {
    expect(() => parseRotation('10MiB', 7, false)).toThrow(/rotate must be \{max_bytes: "10MiB"\} or \{when: "midnight"\}/);
    expect(() => parseRotation({ max_bytes: '10MiB', when: '1h' }, 7, false)).toThrow(/got keys max_bytes, when/);
    expect(() => parseRotation({ max_bytes: '10 MiB' }, 7, false)).toThrow(/rotate\.max_bytes must be a size/);
    expect(() => parseRotation({ when: 'weekly' }, 7, false)).toThrow(/rotate\.when must be "midnight" or a duration/);
    expect(() => parseRotation({ when: '500ms' }, 7, false)).toThrow(/at least "1s"/);
  });
});

describe('rotation by size', () => {
  it('never lets a file pass max_bytes, never cuts a line, and keeps every line in order (any batches)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 30 }), fc.integer({ min: 20, max: 90 }), async (batches, maxBytes) => {
        const dir = folder();
        const path = join(dir, 'app.log');
        const rotation = new Rotation({ by: 'size', maxBytes, keep: 1000, compress: false }, () => {});
        const file = plainFile();
        let n = 0;
        const all: string[] = [];
        for (const size of batches) {
          const lines = Array.from({ length: size }, () => lineOf(n++));
          all.push(...lines);
          await rotation.write(path, batches.length % 2 === 0 ? lines.join('') : Buffer.from(lines.join('')), file);
        }
        const files = numberedOldestFirst(dir, 'app.log');
        const contents = files.map(read);
        expect(contents.join('')).toBe(all.join(''));
        for (const content of contents) {
          expect(content.endsWith('\n')).toBe(true);
          // Over max_bytes only when one line alone is longer.
          if (Buffer.byteLength(content) > maxBytes) expect(content.split('\n').length).toBe(2);
        }
        expect(file.closes).toBe(files.length - 1);
      }),
      { numRuns: 40 },
    );
  });

  it('keeps the newest `keep` old files and deletes the rest', async () => {
    const dir = folder();
    const path = join(dir, 'app.log');
    const rotation = new Rotation({ by: 'size', maxBytes: 10, keep: 3, compress: false }, () => {});
    for (let i = 0; i < 10; i++) await rotation.write(path, `line-${i}..\n`, plainFile());
    expect(readdirSync(dir).sort()).toEqual(['app.log', 'app.log.1', 'app.log.2', 'app.log.3']);
    expect(numberedOldestFirst(dir, 'app.log').map(read)).toEqual(['line-6..\n', 'line-7..\n', 'line-8..\n', 'line-9..\n']);
  });

  it('gzips old files in the background and shifts the .gz names', async () => {
    const dir = folder();
    const path = join(dir, 'app.log');
    const rotation = new Rotation({ by: 'size', maxBytes: 10, keep: 2, compress: true }, () => {});
    for (let i = 0; i < 5; i++) await rotation.write(path, `line-${i}..\n`, plainFile());
    await rotation.close();
    expect(readdirSync(dir).sort()).toEqual(['app.log', 'app.log.1.gz', 'app.log.2.gz']);
    expect(numberedOldestFirst(dir, 'app.log').map(read)).toEqual(['line-2..\n', 'line-3..\n', 'line-4..\n']);
  });

  it('a file that holds lines already counts them', async () => {
    const dir = folder();
    const path = join(dir, 'app.log');
    writeFileSync(path, '0123456789\n');
    const rotation = new Rotation({ by: 'size', maxBytes: 15, keep: 7, compress: false }, () => {});
    await rotation.write(path, 'abcdef\n', plainFile());
    expect(read(`${path}.1`)).toBe('0123456789\n');
    expect(read(path)).toBe('abcdef\n');
  });

  it('a rotation that fails is said once, and the lines go on into the same file', async () => {
    const dir = folder();
    const path = join(dir, 'app.log');
    const warnings: string[] = [];
    const rotation = new Rotation({ by: 'size', maxBytes: 10, keep: 1, compress: false }, (line) => warnings.push(line));
    // A folder where the oldest kept file would be cannot be deleted to make room.
    mkdirSync(`${path}.1`);
    writeFileSync(join(`${path}.1`, 'keep-me'), '');
    await rotation.write(path, 'first....\n', plainFile());
    await rotation.write(path, 'second...\n', plainFile());
    await rotation.write(path, 'third....\n', plainFile());
    expect(read(path)).toBe('first....\nsecond...\nthird....\n');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^File output: cannot rotate .*app\.log: .*; writing on to it, and trying again at the next write$/);
  });
});

describe('rotation by time', () => {
  const hour = 3_600_000;
  /** Local times, so that names are predictable whatever the machine's time zone. */
  const at = (day: number, hours: number, minutes = 0) => new Date(2024, 4, day, hours, minutes).getTime();

  it('starts a new file at each period, named after the period the old one covered', async () => {
    const dir = folder();
    const path = join(dir, 'app.log');
    let now = at(1, 10, 5);
    const rotation = new Rotation({ by: 'time', every: hour, keep: 7, compress: false }, () => {}, () => now);
    await rotation.write(path, 'a\n', plainFile());
    now = at(1, 10, 59);
    await rotation.write(path, 'b\n', plainFile());
    now = at(1, 11, 0);
    await rotation.write(path, 'c\n', plainFile());
    now = at(1, 13, 30);
    await rotation.write(path, 'd\n', plainFile());
    expect(readdirSync(dir).sort()).toEqual(['app.log', 'app.log.2024-05-01_10', 'app.log.2024-05-01_11']);
    expect(read(`${path}.2024-05-01_10`)).toBe('a\nb\n');
    expect(read(`${path}.2024-05-01_11`)).toBe('c\n');
    expect(read(path)).toBe('d\n');
  });

  it('midnight names files by day, keeps `keep` of them and can gzip them', async () => {
    const dir = folder();
    const path = join(dir, 'app.log');
    let now = at(1, 23);
    const rotation = new Rotation(parseRotation({ when: 'midnight' }, 2, true), () => {}, () => now);
    for (let day = 1; day <= 5; day++) {
      now = at(day, 23);
      await rotation.write(path, `day ${day}\n`, plainFile());
    }
    await rotation.close();
    expect(readdirSync(dir).sort()).toEqual(['app.log', 'app.log.2024-05-03.gz', 'app.log.2024-05-04.gz']);
    expect(read(`${path}.2024-05-04.gz`)).toBe('day 4\n');
    expect(read(path)).toBe('day 5\n');
  });

  it('a file last written in an earlier period is rotated before the first write, named after that period', async () => {
    const dir = folder();
    const path = join(dir, 'app.log');
    writeFileSync(path, 'yesterday\n');
    utimesSync(path, new Date(at(1, 9)), new Date(at(1, 9)));
    const rotation = new Rotation({ by: 'time', every: 86_400_000, keep: 7, compress: false }, () => {}, () => at(2, 8));
    await rotation.write(path, 'today\n', plainFile());
    expect(read(`${path}.2024-05-01`)).toBe('yesterday\n');
    expect(read(path)).toBe('today\n');
  });

  it('a name taken already (the clock went back) gets .1 rather than replacing it', async () => {
    const dir = folder();
    const path = join(dir, 'app.log');
    writeFileSync(`${path}.2024-05-01_10`, 'older\n');
    let now = at(1, 10);
    const rotation = new Rotation({ by: 'time', every: hour, keep: 7, compress: false }, () => {}, () => now);
    await rotation.write(path, 'a\n', plainFile());
    now = at(1, 11);
    await rotation.write(path, 'b\n', plainFile());
    expect(read(`${path}.2024-05-01_10`)).toBe('older\n');
    expect(read(`${path}.2024-05-01_10.1`)).toBe('a\n');
  });

  it('suffixes go down to the unit of the period', () => {
    const start = new Date(2024, 0, 2, 3, 4, 5).getTime();
    expect(timeSuffix(start, 86_400_000)).toBe('2024-01-02');
    expect(timeSuffix(start, 2 * hour)).toBe('2024-01-02_03');
    expect(timeSuffix(start, 15 * 60_000)).toBe('2024-01-02_03-04');
    expect(timeSuffix(start, 30_000)).toBe('2024-01-02_03-04-05');
  });
});
