// File output rotation through the real binary, under a stream: every line
// ends up in exactly one file, whole and in order.
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { run, sleep, start, tempDir } from './helpers.js';

const dir = tempDir();
let cases = 0;
const folder = () => {
  const path = join(dir, `case-${++cases}`);
  mkdirSync(path);
  return path;
};
const toFile = (options: Record<string, unknown>) => ['--output', 'File', '--output_options', JSON.stringify(options)];
const read = (path: string) => (path.endsWith('.gz') ? gunzipSync(readFileSync(path)).toString() : readFileSync(path, 'utf8'));

/** The files of `name`, oldest first: NAME.N ... NAME.1, then NAME. */
function sizeRotated(folder: string, name: string): string[] {
  const old = readdirSync(folder)
    .filter((f) => f.startsWith(`${name}.`))
    .sort((a, b) => Number.parseInt(b.slice(name.length + 1), 10) - Number.parseInt(a.slice(name.length + 1), 10));
  return [...old, name].map((f) => join(folder, f));
}

const events = (count: number, from = 0) => Array.from({ length: count }, (_, i) => `{"n":${from + i},"text":"${'é'.repeat((from + i) % 13)}"}\n`).join('');

describe('File output rotation', () => {
  for (const [label, extra] of [
    ['lines passed through as bytes', [] as string[]],
    ['messages decoded and encoded', ['--filter', 'Null']],
  ] as const) {
    it(`by size: no file past max_bytes, no line lost or cut, order kept (${label})`, async () => {
      const out = folder();
      const input = events(12_000);
      const { code, stderr } = await run([...extra, ...toFile({ filename: join(out, 'app.log'), rotate: { max_bytes: '16KiB' }, keep: 100 })], { input });
      expect(stderr).toBe('');
      expect(code).toBe(0);
      const files = sizeRotated(out, 'app.log');
      expect(files.length).toBeGreaterThan(10);
      const contents = files.map(read);
      expect(contents.join('')).toBe(input);
      for (const content of contents) {
        expect(Buffer.byteLength(content)).toBeLessThanOrEqual(16 << 10);
        expect(content.endsWith('\n')).toBe(true);
      }
    });
  }

  it('by size, one file per %{name}, old ones gzipped and only `keep` of them kept', async () => {
    const out = folder();
    const lines = Array.from({ length: 4000 }, (_, i) => JSON.stringify({ name: i % 3 === 0 ? 'db' : 'web', n: i }) + '\n');
    const { code, stderr } = await run(toFile({ filename: join(out, '%{name}.log'), rotate: { max_bytes: '8KiB' }, keep: 3, compress: true }), { input: lines.join('') });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['db.log', 'db.log.1.gz', 'db.log.2.gz', 'db.log.3.gz', 'web.log', 'web.log.1.gz', 'web.log.2.gz', 'web.log.3.gz']);
    for (const name of ['db', 'web']) {
      const kept = sizeRotated(out, `${name}.log`).map(read).join('');
      const all = lines.filter((l) => l.includes(`"${name}"`)).join('');
      // The oldest files went; what is left is the newest part of the stream, whole.
      expect(all.endsWith(kept)).toBe(true);
      expect(kept.startsWith('{"name"')).toBe(true);
    }
  });

  it('by time: a stream that runs across periods loses no line', async () => {
    const out = folder();
    const running = start(toFile({ filename: join(out, 'app.log'), rotate: { when: '1s' }, keep: 100 }));
    let sent = '';
    for (let i = 0; i < 25; i++) {
      const chunk = events(200, i * 200);
      sent += chunk;
      running.child.stdin!.write(chunk);
      await sleep(100);
    }
    running.child.stdin!.end();
    const { code, stderr } = await running.done;
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const rotated = readdirSync(out).filter((f) => f !== 'app.log').sort();
    expect(rotated.length).toBeGreaterThanOrEqual(1);
    for (const name of rotated) expect(name).toMatch(/^app\.log\.\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}$/);
    expect([...rotated, 'app.log'].map((f) => read(join(out, f))).join('')).toBe(sent);
  });

  it('a malformed rotate is a usage error naming the plugin and the option', async () => {
    const { code, stderr } = await run(toFile({ filename: join(folder(), 'x.log'), rotate: { max_bytes: '10 MiB' } }));
    expect(code).toBe(2);
    expect(stderr).toMatch(/^message-passing: --output File: rotate\.max_bytes must be a size like/);
    const second = await run(toFile({ filename: join(folder(), 'x.log'), rotate: { every: '1h' } }));
    expect(second.code).toBe(2);
    expect(second.stderr).toContain('rotate must be {max_bytes: "10MiB"} or {when: "midnight"}');
  });
});
