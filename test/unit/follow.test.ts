import { appendFileSync, mkdtempSync, renameSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { FrameProblem, FrameSink } from '../../src/io/framer.js';
import { FileError, FilePattern } from '../../src/io/files.js';
import { Follower, type FollowOptions, type OpenedFile } from '../../src/io/follow.js';
import { LineFramer } from '../../src/io/line-framer.js';

const root = mkdtempSync(join(tmpdir(), 'mp-follow-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
/** A folder of its own for each test: the follower watches the whole folder. */
const folder = () => mkdtempSync(join(root, 'f-'));

interface Line {
  file: string;
  text: string;
}

/** A follower running in this process, recording each line with the file it came from. */
class Following {
  readonly lines: Line[] = [];
  readonly problems: FrameProblem[] = [];
  readonly reports: string[] = [];
  readonly opened: OpenedFile[] = [];
  private readonly stopper = new AbortController();
  private readonly running: Promise<void>;

  constructor(filename: string, options: Partial<FollowOptions> = {}) {
    const follower = new Follower(
      {
        pattern: new FilePattern(filename),
        fromEnd: false,
        pollInterval: 20,
        framer: (file) => {
          this.opened.push(file);
          return new LineFramer(this.sink(file.path), 1000);
        },
        report: (path: string, error: FileError) => this.reports.push(`${path}: ${error.message}`),
        endPartialOnStop: true,
        ...options,
      },
      this.stopper.signal,
    );
    this.running = follower.run();
  }

  private sink(path: string): FrameSink {
    const name = path.slice(path.lastIndexOf('/') + 1);
    return {
      form: 'text',
      frames: (frames) => {
        for (const text of frames as string[]) if (text !== '') this.lines.push({ file: name, text });
      },
      problem: (problem) => this.problems.push(problem),
    };
  }

  texts(): string[] {
    return this.lines.map((l) => l.text);
  }

  /** Waits until `count` lines came (polling), then a little more for any that should not come. */
  async until(count: number, what = `${count} lines`): Promise<void> {
    for (const deadline = Date.now() + 5000; this.lines.length < count; await sleep(10)) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.texts())}`);
    }
  }

  async stop(): Promise<void> {
    this.stopper.abort();
    await this.running;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const numbered = (prefix: string, from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `${prefix}${from + i}`);
const text = (lines: string[]) => lines.map((l) => `${l}\n`).join('');

const running: Following[] = [];
function follow(filename: string, options?: Partial<FollowOptions>): Following {
  const f = new Following(filename, options);
  running.push(f);
  return f;
}
afterEach(async () => {
  for (const f of running.splice(0)) await f.stop();
});

/** A short pause: long enough for a 20 ms poll to have looked (what should not come would have). */
const quiet = () => sleep(120);

describe('Follower', () => {
  it('reads what is appended, a line cut in two included, each line once', async () => {
    const dir = folder();
    const path = join(dir, 'app.log');
    writeFileSync(path, text(['a', 'b']));
    const f = follow(path);
    await f.until(2);
    appendFileSync(path, 'c\nd');
    await f.until(3);
    await quiet();
    expect(f.texts()).toEqual(['a', 'b', 'c']);
    appendFileSync(path, 'dd\ne\n');
    await f.until(5);
    await quiet();
    expect(f.texts()).toEqual(['a', 'b', 'c', 'ddd', 'e']);
  });

  it('after a rename, reads the rest of the old file first, then the new file from its start', async () => {
    const dir = folder();
    const path = join(dir, 'app.log');
    writeFileSync(path, text(numbered('old', 1, 50)));
    const f = follow(path);
    await f.until(50);
    // Rotation as logrotate does it, with the writer still adding to the old file a moment:
    // all of it before the follower can look (it runs on this thread).
    appendFileSync(path, text(numbered('old', 51, 60)));
    renameSync(path, join(dir, 'app.log.1'));
    writeFileSync(path, text(numbered('new', 1, 20)));
    appendFileSync(join(dir, 'app.log.1'), text(numbered('old', 61, 70)));
    await f.until(90);
    appendFileSync(path, text(numbered('new', 21, 25)));
    await f.until(95);
    await quiet();
    expect(f.texts()).toEqual([...numbered('old', 1, 70), ...numbered('new', 1, 25)]);
    expect(f.lines.filter((l) => l.text.startsWith('old')).every((l) => l.file === 'app.log')).toBe(true);
    expect(f.reports).toEqual([]);
  });

  it('starts again from the beginning of a truncated file', async () => {
    const dir = folder();
    const path = join(dir, 'app.log');
    writeFileSync(path, text(numbered('first', 1, 20)));
    const f = follow(path);
    await f.until(20);
    // copytruncate: emptied, then written again, shorter than before.
    truncateSync(path, 0);
    appendFileSync(path, text(['again1', 'again2']));
    await f.until(22);
    await quiet();
    expect(f.texts()).toEqual([...numbered('first', 1, 20), 'again1', 'again2']);
  });

  it('waits for a file that does not exist yet, then reads it from its start', async () => {
    const dir = folder();
    const path = join(dir, 'later.log');
    const f = follow(path);
    await quiet();
    expect(f.lines).toEqual([]);
    writeFileSync(path, text(['x', 'y']));
    await f.until(2);
    appendFileSync(path, text(['z']));
    await f.until(3);
    await quiet();
    expect(f.texts()).toEqual(['x', 'y', 'z']);
    expect(f.reports).toEqual([]);
  });

  it('with a pattern, reads every matching file, those that appear later included, and nothing else', async () => {
    const dir = folder();
    writeFileSync(join(dir, 'a.log'), text(['a1', 'a2']));
    writeFileSync(join(dir, 'skip.txt'), text(['no']));
    writeFileSync(join(dir, '.hidden.log'), text(['no']));
    const f = follow(join(dir, '*.log'));
    await f.until(2);
    writeFileSync(join(dir, 'b.log'), text(['b1']));
    appendFileSync(join(dir, 'a.log'), text(['a3']));
    await f.until(4);
    appendFileSync(join(dir, 'b.log'), text(['b2']));
    await f.until(5);
    await quiet();
    const byFile = (name: string) => f.lines.filter((l) => l.file === name).map((l) => l.text);
    expect(byFile('a.log')).toEqual(['a1', 'a2', 'a3']);
    expect(byFile('b.log')).toEqual(['b1', 'b2']);
    expect(f.lines).toHaveLength(5);
  });

  it('with a pattern that also matches the rotated name, reads the rotated file once', async () => {
    const dir = folder();
    const path = join(dir, 'app.log');
    writeFileSync(path, text(numbered('old', 1, 10)));
    const f = follow(join(dir, '*.log'));
    await f.until(10);
    renameSync(path, join(dir, 'app.1.log'));
    writeFileSync(path, text(['new1']));
    appendFileSync(join(dir, 'app.1.log'), text(['old11']));
    await f.until(12);
    await quiet();
    await quiet();
    expect(f.texts()).toEqual([...numbered('old', 1, 11), 'new1']);
  });

  it('from the end: lines already there are skipped, appended ones read', async () => {
    const dir = folder();
    const path = join(dir, 'app.log');
    writeFileSync(path, text(['before']));
    const f = follow(path, { fromEnd: true });
    await quiet();
    appendFileSync(path, text(['after']));
    await f.until(1);
    await quiet();
    expect(f.texts()).toEqual(['after']);
  });

  it('on stop, frames a last line without LF only when told to', async () => {
    const dir = folder();
    for (const endPartialOnStop of [true, false]) {
      const path = join(dir, `partial-${endPartialOnStop}.log`);
      writeFileSync(path, 'whole\npart');
      const f = new Following(path, { endPartialOnStop });
      await f.until(1);
      await quiet();
      await f.stop();
      expect(f.texts()).toEqual(endPartialOnStop ? ['whole', 'part'] : ['whole']);
    }
  });

  it('a file deleted and created again under its name is read from its start', async () => {
    const dir = folder();
    const path = join(dir, 'app.log');
    writeFileSync(path, text(['one', 'two']));
    const f = follow(path);
    await f.until(2);
    unlinkSync(path);
    writeFileSync(path, text(['three']));
    await f.until(3);
    await quiet();
    expect(f.texts()).toEqual(['one', 'two', 'three']);
  });
});
