// Rotation of the files the File output writes, as Python's RotatingFileHandler
// (by size: app.log.1, app.log.2, ...) and TimedRotatingFileHandler (by time:
// app.log.2024-05-01) do: old files kept up to `keep`, optionally gzipped.
// Rotation happens between two writes, and a write is split only between two
// lines: no line is lost or cut in two by a rotation.
import { createReadStream, createWriteStream } from 'node:fs';
import { readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { describe } from '../core/errors.js';
import { parseDuration, parseSize, ValueFormatError } from '../core/time.js';
import { errorCode, systemReason } from '../io/system-errors.js';

const LF = 10;
const DAY = 86_400_000;

export type RotationPolicy =
  | { by: 'size'; maxBytes: number; keep: number; compress: boolean }
  /** `every`: the length of a period in ms; periods are aligned on local time (a day starts at local midnight). */
  | { by: 'time'; every: number; keep: number; compress: boolean };

/**
 * The File output's `rotate` option: {max_bytes: SIZE} or {when: "midnight" |
 * DURATION}. Throws an Error that says what is wrong (the plugin's check()).
 */
export function parseRotation(rotate: unknown, keep: number, compress: boolean): RotationPolicy {
  const expected = 'rotate must be {max_bytes: "10MiB"} or {when: "midnight"} (or a duration such as "1h")';
  if (typeof rotate !== 'object' || rotate === null || Array.isArray(rotate)) throw new Error(expected);
  const keys = Object.keys(rotate);
  if (keys.length !== 1 || (keys[0] !== 'max_bytes' && keys[0] !== 'when')) throw new Error(`${expected}, got keys ${keys.join(', ') || 'none'}`);
  const value = (rotate as Record<string, unknown>)[keys[0]!];
  try {
    if (keys[0] === 'max_bytes') {
      const maxBytes = parseSize(value);
      if (maxBytes < 1) throw new Error('rotate.max_bytes must be at least 1 byte');
      return { by: 'size', maxBytes, keep, compress };
    }
    const every = value === 'midnight' ? DAY : parseDuration(value);
    if (every < 1000) throw new Error('rotate.when must be "midnight" or a duration of at least "1s"');
    return { by: 'time', every, keep, compress };
  } catch (error) {
    if (error instanceof ValueFormatError) throw new Error(`rotate.${keys[0]} must be ${keys[0] === 'when' ? '"midnight" or ' : ''}${error.expected}`);
    throw error;
  }
}

/** What the rotation needs of the file it rotates, which the output keeps open. */
export interface RotatedFile {
  /** Size and modification time of the file at `path`, opened (created) if need be. */
  open(path: string): Promise<{ size: number; mtimeMs: number }>;
  /** Appends whole lines to `path`. */
  write(path: string, data: Buffer): Promise<void>;
  /** Closes `path` if it is open, so that it can be renamed; the next write opens it anew. */
  close(path: string): Promise<void>;
}

interface FileState {
  size: number;
  /** Time policy: when the current period ends (ms since the epoch). */
  periodEnd: number;
  /** Time policy: when it began, which names the file once rotated. */
  periodStart: number;
}

/** State kept for this many files at most; a file left out is looked at again (stat) when next written. */
const MAX_STATES = 4096;

export class Rotation {
  private readonly states = new Map<string, FileState>();
  /** Compressions running, by the path whose rotated file they compress. */
  private readonly compressing = new Map<string, Promise<void>>();
  /** Paths whose last rotation failed: said once, tried again at the next write. */
  private readonly failing = new Set<string>();

  constructor(
    readonly policy: RotationPolicy,
    private readonly warn: (line: string) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Writes `data`, whole LF-terminated lines, to `path`, rotating first (or between two lines) when the policy says so. */
  async write(path: string, data: string | Buffer, file: RotatedFile): Promise<void> {
    let bytes = typeof data === 'string' ? Buffer.from(data) : data;
    const state = await this.state(path, file);
    if (this.policy.by === 'time') {
      const now = this.now();
      if (now >= state.periodEnd) {
        if (state.size > 0) await this.rotate(path, state, file);
        this.startPeriod(state, now);
      }
      await file.write(path, bytes);
      state.size += bytes.length;
      return;
    }
    const { maxBytes } = this.policy;
    while (bytes.length > 0) {
      const room = maxBytes - state.size;
      let cut = room >= bytes.length ? bytes.length : room > 0 ? bytes.lastIndexOf(LF, room - 1) + 1 : 0;
      if (cut === 0) {
        if (state.size > 0 && (await this.rotate(path, state, file))) continue;
        // An empty file takes one line even when it is longer than max_bytes: a line is never cut.
        const end = bytes.indexOf(LF);
        cut = end < 0 ? bytes.length : end + 1;
      }
      await file.write(path, cut === bytes.length ? bytes : bytes.subarray(0, cut));
      state.size += cut;
      bytes = bytes.subarray(cut);
    }
  }

  /** Files were reopened behind the rotation's back (SIGHUP, logrotate): their sizes are looked at again. */
  forget(): void {
    this.states.clear();
  }

  /** Resolves once the compressions under way are done. */
  async close(): Promise<void> {
    while (this.compressing.size > 0) await Promise.all(this.compressing.values());
  }

  private async state(path: string, file: RotatedFile): Promise<FileState> {
    const known = this.states.get(path);
    if (known) {
      // Most recently used last, so the oldest is the one to forget.
      this.states.delete(path);
      this.states.set(path, known);
      return known;
    }
    const { size, mtimeMs } = await file.open(path);
    const state: FileState = { size, periodEnd: 0, periodStart: 0 };
    // As Python does: a file that holds lines belongs to the period of its last write.
    this.startPeriod(state, size > 0 ? mtimeMs : this.now());
    if (this.states.size >= MAX_STATES) this.states.delete(this.states.keys().next().value!);
    this.states.set(path, state);
    return state;
  }

  private startPeriod(state: FileState, at: number): void {
    if (this.policy.by !== 'time') return;
    const { every } = this.policy;
    const offset = localOffset(at);
    const start = Math.floor((at + offset) / every) * every - offset;
    state.periodStart = start;
    state.periodEnd = start + every;
  }

  /** Moves the file away; true when it did (the file is then empty), false when it could not (said once, the file goes on). */
  private async rotate(path: string, state: FileState, file: RotatedFile): Promise<boolean> {
    await file.close(path);
    // The previous rotated file must be compressed before the names shift under it.
    await this.compressing.get(path);
    let rotated: string;
    try {
      rotated = this.policy.by === 'size' ? await this.shiftNumbered(path) : await this.freeTimedName(path, state.periodStart);
      await rename(path, rotated);
    } catch (error) {
      if (!this.failing.has(path)) {
        this.failing.add(path);
        this.warn(`File output: cannot rotate ${path}: ${systemReason(error)}; writing on to it, and trying again at the next write`);
      }
      return false;
    }
    this.failing.delete(path);
    state.size = 0;
    if (this.policy.compress) this.compressInBackground(path, rotated);
    else if (this.policy.by === 'time') await this.prune(path);
    return true;
  }

  /** path.1 ... path.(keep-1) move up by one, path.keep and beyond go; returns path.1, now free. */
  private async shiftNumbered(path: string): Promise<string> {
    const { keep } = this.policy;
    const prefix = `${basename(path)}.`;
    // Only the names there are: a large keep must not cost a rename attempt per number.
    const present = (await readdir(dirname(path)))
      .filter((name) => name.startsWith(prefix) && /^\d+(\.gz)?$/.test(name.slice(prefix.length)))
      .map((name) => ({ name, n: Number.parseInt(name.slice(prefix.length), 10) }))
      .sort((a, b) => b.n - a.n);
    for (const { name, n } of present) {
      const from = join(dirname(path), name);
      if (n >= keep) await rm(from);
      else await rename(from, `${path}.${n + 1}${name.endsWith('.gz') ? '.gz' : ''}`);
    }
    return `${path}.1`;
  }

  /** path.SUFFIX for the period that began at `start`, with .1, .2 ... added if it exists already (the clock went back). */
  private async freeTimedName(path: string, start: number): Promise<string> {
    const base = `${path}.${timeSuffix(start, this.policy.by === 'time' ? this.policy.every : DAY)}`;
    for (let n = 0; ; n++) {
      const name = n === 0 ? base : `${base}.${n}`;
      if (!(await exists(name)) && !(await exists(`${name}.gz`))) return name;
    }
  }

  private compressInBackground(path: string, rotated: string): void {
    const done = gzipFile(rotated)
      .catch((error: unknown) => this.warn(`File output: cannot compress ${rotated}: ${describe(error)}; it is kept as it is`))
      .then(() => (this.policy.by === 'time' ? this.prune(path) : undefined))
      .finally(() => {
        if (this.compressing.get(path) === done) this.compressing.delete(path);
      });
    this.compressing.set(path, done);
  }

  /** Time policy: keeps the `keep` newest rotated files of `path`. */
  private async prune(path: string): Promise<void> {
    const folder = dirname(path);
    const prefix = `${basename(path)}.`;
    let names: string[];
    try {
      names = await readdir(folder);
    } catch {
      return;
    }
    const rotated = names
      .filter((name) => name.startsWith(prefix) && TIMED_SUFFIX.test(name.slice(prefix.length)))
      .sort(byPeriod(prefix.length));
    for (const name of rotated.slice(0, Math.max(0, rotated.length - this.policy.keep))) {
      await rm(join(folder, name), { force: true }).catch(() => undefined);
    }
  }
}

/** What time rotation appends: the period's start, then .N for a second file of one period, then .gz. */
const TIMED_SUFFIX = /^\d{4}-\d{2}-\d{2}(_\d{2}(-\d{2}(-\d{2})?)?)?(\.\d+)?(\.gz)?$/;

/** Oldest first: by the period written in the name, then by the number after it. */
function byPeriod(from: number): (a: string, b: string) => number {
  const key = (name: string) => {
    const match = /^([\d_-]+)(?:\.(\d+))?/.exec(name.slice(from))!;
    return [match[1]!, Number(match[2] ?? 0)] as const;
  };
  return (a, b) => {
    const [periodA, nA] = key(a);
    const [periodB, nB] = key(b);
    return periodA < periodB ? -1 : periodA > periodB ? 1 : nA - nB;
  };
}

/** Milliseconds local time is ahead of UTC at `at`. */
function localOffset(at: number): number {
  return -new Date(at).getTimezoneOffset() * 60_000;
}

/** The start of a period in local time, as Python's TimedRotatingFileHandler names files: to the day, hour, minute or second. */
export function timeSuffix(start: number, every: number): string {
  const d = new Date(start);
  const two = (n: number) => String(n).padStart(2, '0');
  const day = `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}`;
  if (every % DAY === 0) return day;
  if (every % 3_600_000 === 0) return `${day}_${two(d.getHours())}`;
  if (every % 60_000 === 0) return `${day}_${two(d.getHours())}-${two(d.getMinutes())}`;
  return `${day}_${two(d.getHours())}-${two(d.getMinutes())}-${two(d.getSeconds())}`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Replaces `path` with `path.gz`; on failure the partial .gz goes and `path` stays. */
async function gzipFile(path: string): Promise<void> {
  const target = `${path}.gz`;
  try {
    await pipeline(createReadStream(path), createGzip(), createWriteStream(target, { flags: 'wx' }));
  } catch (error) {
    // A .gz that was there already is not ours to remove.
    if (errorCode(error) !== 'EEXIST') await rm(target, { force: true });
    throw error;
  }
  await rm(path, { force: true });
}
