// The README is run: every `$ command` in a ```sh block must print what the lines under it say,
// and every file shown (a block whose first line is `// NAME`) is written first.
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { flags } from '../../src/cli/flags.js';
import { BIN, ROOT, tempDir } from './helpers.js';

interface Block {
  lang: string;
  lines: string[];
  /** 1-based line of the opening fence, for messages. */
  at: number;
}

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

function blocks(markdown: string): Block[] {
  const found: Block[] = [];
  let open: Block | undefined;
  markdown.split('\n').forEach((line, i) => {
    const fence = /^```(\S*)/.exec(line);
    if (!fence) return open?.lines.push(line);
    if (open) {
      found.push(open);
      open = undefined;
    } else open = { lang: fence[1]!, lines: [], at: i + 1 };
  });
  return found;
}

interface Example {
  command: string;
  expected: string[];
  at: number;
}

/** `$ command` lines, each followed by the lines it prints. */
function examples(block: Block): Example[] {
  const list: Example[] = [];
  block.lines.forEach((line, i) => {
    if (line.startsWith('$ ')) list.push({ command: line.slice(2), expected: [], at: block.at + i + 1 });
    else list.at(-1)?.expected.push(line);
  });
  return list;
}

/** Expected lines as a pattern: `…` alone stands for any lines, `…` inside a line for any text. */
function pattern(expected: string[]): RegExp {
  const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const body = expected.map((line) => (line === '…' ? '(?:[^\\n]*\\n)*' : escape(line).replace(/…/g, '[^\\n]*') + '\\n')).join('');
  return new RegExp(`^${body}$`);
}

const dir = tempDir();
const all = blocks(readme);
const shellBlocks = all.filter((b) => b.lang === 'sh');
const [quickStart, ...usage] = shellBlocks;

// `message-passing` on PATH, as after npm install -g, and every file the README shows, written out.
const binDir = join(dir, '.bin');
mkdirSync(binDir);
writeFileSync(join(binDir, 'message-passing'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`);
chmodSync(join(binDir, 'message-passing'), 0o755);
for (const block of all) {
  const name = /^\/\/ (\S+)$/.exec(block.lines[0] ?? '')?.[1];
  if (name && block.lang !== 'sh') writeFileSync(join(dir, name), block.lines.join('\n') + '\n');
}
const env: Record<string, string | undefined> = { ...process.env, PATH: `${binDir}:${process.env.PATH}` };
delete env.DEBUG;
const exec = promisify(execFile);

describe('README', () => {
  it('Quick start shows exactly the two commands for a fresh clone, and the first one works', () => {
    expect(quickStart!.lines).toEqual(["npm install && echo '{\"hello\":\"world\"}' | npx message-passing", 'npm test']);
    // npm install has run already (it is how the tests got here); the rest of the line is checked.
    const result = spawnSync('sh', ['-c', "echo '{\"hello\":\"world\"}' | npx message-passing"], { cwd: ROOT, encoding: 'utf8' });
    expect(result.status).toBe(0);
    expect(result.stdout).toBe('{"hello":"world"}\n');
  });

  it('every other sh block holds commands to run', () => {
    for (const block of usage) expect(examples(block).length, `README.md:${block.at}`).toBeGreaterThan(0);
  });

  // Blocks run side by side; the commands of one block run in order, in one shared folder.
  it.concurrent.each(usage.map((block) => [block.at, block] as const))('the commands of the block at README.md:%i print what it says', async (_at, block) => {
    for (const { command, expected, at } of examples(block)) {
      let output: string;
      try {
        ({ stdout: output } = await exec('bash', ['-c', `{ ${command}\n} 2>&1`], { cwd: dir, env, encoding: 'utf8', timeout: 10_000 }));
      } catch (error) {
        throw new Error(`README.md:${at}: \`${command}\` failed: ${String((error as { stdout?: string }).stdout ?? error)}`);
      }
      expect(output, `README.md:${at}: ${command}`).toMatch(pattern(expected));
    }
  });

  it('the flags table lists every flag, and only those', () => {
    const rows = readme.split('\n').filter((l) => /^\| `--/.test(l));
    const inTable = rows.map((r) => /^\| `--([a-z_]+)/.exec(r)![1]);
    expect(inTable).toEqual(flags.filter((f) => !f.hidden).map((f) => f.name));
  });

  it('every file of the project it names exists', () => {
    const named = [...new Set([...readme.matchAll(/\b((?:test|src|scripts|man)\/[\w./-]*\w)/g)].map((m) => m[1]!))];
    expect(named.length).toBeGreaterThan(5);
    expect(named.filter((path) => !existsSync(join(ROOT, path)))).toEqual([]);
  });
});
