import { it, expect } from 'vitest';
import { run } from './helpers.js';
import { buildLines } from './random-lines.js';
it('repro', async () => {
  const lines: any = [{"kind":"long","length":2998,"crlf":false},{"kind":"long","length":4997,"crlf":true},{"kind":"good","drop":true,"text":"","crlf":false},{"kind":"long","length":4681,"crlf":true},{"kind":"good","drop":true,"text":"\u0002","crlf":true},{"kind":"empty","crlf":false},{"kind":"empty","crlf":false},{"kind":"long","length":312,"crlf":false},{"kind":"empty","crlf":false},{"kind":"good","drop":false,"text":"𮏴򲡬񶊳򦿠","crlf":true}];
  const { input } = buildLines(lines, true);
  (await import('node:fs')).writeFileSync('/tmp/scratch/repro.bin', input);
  let fails = 0;
  for (let i = 0; i < 40; i++) {
    const r = await run(['--input_options', '{max_line_length: 200}'], { input });
    if (r.code !== 0) { fails++; console.log(r.code, r.stderr.slice(-600)); }
  }
  expect(fails).toBe(0);
}, 120000);
