import { watch, type FSWatcher, type Stats } from 'node:fs';
import { open, readdir, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { RuntimeError, describe } from '../core/errors.js';
import { LineFramer } from './line-framer.js';
import type { FrameBatch, InputContext } from '../core/plugin.js';

/** Bytes asked for per read: large reads are what make a file input fast. */
export const READ_SIZE = 256 * 1024;
/** Reads per file per round, so one busy file cannot starve the others. */
const READS_PER_ROUND = 8;
/**
 * A file that lost its name (rotated away or deleted) is still read until it
 * has been quiet this long: writers often go on writing to it for a moment,
 * until they reopen their log (logrotate's postrotate).
 */
export const RETIRED_QUIET_MS = 5000;

/**
 * What to read: one path, or a pattern with `*` (any run of characters) and
 * `?` (one character) in its last part only, like `/var/log/app/*.log`.
 * Wildcards do not match a leading dot, as in the shell.
 */
export class FilePattern {
  readonly directory: string;
  readonly name: string;
  private readonly matcher: RegExp | undefined;

  constructor(filename: string) {
    const full = resolve(filename);
    this.directory = dirname(full);
    this.name = basename(full);
    this.matcher = hasWildcard(this.name) ? wildcardRegExp(this.name) : undefined;
  }

  get isPattern(): boolean {
    return this.matcher !== undefined;
  }

  /** The one path when this is not a pattern. */
  get path(): string {
    return join(this.directory, this.name);
  }

  matches(name: string): boolean {
    return this.matcher ? this.matcher.test(name) : name === this.name;
  }

  /** Paths that exist now, sorted; a missing folder is no match. */
  async list(): Promise<string[]> {
    if (!this.matcher) return [this.path];
    let entries;
    try {
      entries = await readdir(this.directory, { withFileTypes: true });
    } catch (error) {
      if (isMissing(error)) return [];
      throw error;
    }
    return entries
      .filter((e) => (e.isFile() || e.isSymbolicLink()) && this.matches(e.name))
      .map((e) => join(this.directory, e.name))
      .sort();
  }
}

export function hasWildcard(text: string): boolean {
  return /[*?]/.test(text);
}

export function wildcardRegExp(pattern: string): RegExp {
  let source = '';
  for (const char of pattern) {
    if (char === '*') source += '[^/]*';
    else if (char === '?') source += '[^/]';
    else source += char.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  // Like the shell, a wildcard at the start does not match a hidden file.
  const hidden = pattern.startsWith('.') ? '' : '(?!\\.)';
  return new RegExp(`^${hidden}${source}$`, 's');
}

export function isMissing(error: unknown): boolean {
  const code = errorCode(error);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

export function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string'
    ? error.code
    : undefined;
}

function notARegularFile(info: Stats): Error {
  const error = new Error('it is not a regular file (follow reads regular files only)');
  return info.isDirectory() ? Object.assign(error, { code: 'EISDIR' }) : error;
}

/** One clear line for a file that cannot be read. */
export function cannotRead(path: string, error: unknown, hint = ''): RuntimeError {
  const why: Record<string, string> = {
    ENOENT: 'no such file',
    ENOTDIR: 'a part of the path is not a folder',
    EACCES: 'permission denied (check its permissions and those of its folders)',
    EPERM: 'permission denied (check its permissions and those of its folders)',
    EISDIR: 'it is a folder (give a file, or a pattern like dir/*.log)',
  };
  const code = errorCode(error);
  const reason = (code && why[code]) ?? describe(error);
  return new RuntimeError(`File input: cannot read ${path}: ${reason}${hint}`);
}

/** Reads large chunks; a small read is copied out so its big buffer can be reused. */
export class ChunkReader {
  private scratch = Buffer.allocUnsafeSlow(READ_SIZE);

  /** `position` null reads on from where the last read ended (pipes, devices). */
  async read(handle: FileHandle, position: number | null): Promise<Buffer | undefined> {
    const { bytesRead } = await handle.read(this.scratch, 0, READ_SIZE, position);
    if (bytesRead === 0) return undefined;
    if (bytesRead < READ_SIZE / 4) return Buffer.from(this.scratch.subarray(0, bytesRead));
    // The framer and the chain may keep this buffer: hand it over, take a new one.
    const chunk = this.scratch.subarray(0, bytesRead);
    this.scratch = Buffer.allocUnsafeSlow(READ_SIZE);
    return chunk;
  }
}

/** A file being read, known by its inode: the name may move on to another file. */
interface TailedFile {
  path: string;
  handle: FileHandle;
  dev: number;
  ino: number;
  /** Offset of the next byte to read. */
  position: number;
  framer: LineFramer;
  /** When the file last gave data (or was opened). */
  lastDataAt: number;
  /** Set once its name points elsewhere: it is closed after RETIRED_QUIET_MS without data. */
  retired: boolean;
}

export interface FollowOptions {
  pattern: FilePattern;
  /** Start at the end of the files that exist when following starts. */
  fromEnd: boolean;
  pollInterval: number;
  maxLineLength: number;
  /** Field that receives {file, line} on each message, when asked for. */
  origin: string | undefined;
}

/**
 * Follows one path or a pattern like `tail -F`: reads what is appended, and
 * survives rotation by rename (the rest of the old file is read, then the new
 * one from its start), truncation (starts again from the beginning) and files
 * that do not exist yet. A directory watch wakes it promptly; a poll timer
 * catches whatever the watch misses. Reading is one loop, so batches reach
 * the chain one at a time and in file order.
 */
export class Follower {
  /** Every open file, in the order it was opened: a rotated-away file is read before its successor. */
  private readonly files: TailedFile[] = [];
  /** Which open file holds each watched name now. */
  private readonly byName = new Map<string, TailedFile>();
  /** Names whose open failed, with the error code last reported, so it is reported once. */
  private readonly failing = new Map<string, string>();
  private readonly reader = new ChunkReader();
  private watcher: FSWatcher | undefined;
  private wakeRequested = false;
  private wakeUp: (() => void) | undefined;
  /** The folder must be listed again (a file may have appeared). */
  private rescanDue = true;

  constructor(
    private readonly options: FollowOptions,
    private readonly context: InputContext,
  ) {}

  async run(): Promise<void> {
    const { stopping } = this.context;
    this.startWatching();
    let failed = false;
    try {
      await this.checkNames(this.options.fromEnd, true);
      while (!stopping.aborted) {
        this.wakeRequested = false;
        let progress = false;
        // A name's new file waits until the rest of its old file has been read.
        const waitingForOld = new Set<string>();
        for (const file of [...this.files]) {
          if (!file.retired && waitingForOld.has(file.path)) continue;
          const { gotData, atEnd } = await this.pump(file);
          if (gotData) progress = true;
          if (file.retired && !atEnd) waitingForOld.add(file.path);
          if (stopping.aborted) break;
        }
        if (stopping.aborted) break;
        if (await this.checkNames(false, false)) progress = true;
        await this.closeQuietRetired();
        if (!progress) await this.sleep();
      }
    } catch (error) {
      failed = true;
      throw error;
    } finally {
      this.watcher?.close();
      this.watcher = undefined;
      for (const file of this.files.splice(0)) {
        // Stopping: what was read counts, a partial last line included.
        if (!failed) await file.framer.end();
        await file.handle.close().catch(() => {});
      }
    }
  }

  /** Reads what `file` has now, a bounded amount per round. */
  private async pump(file: TailedFile): Promise<{ gotData: boolean; atEnd: boolean }> {
    let gotData = false;
    let atEnd = false;
    for (let reads = 0; reads < READS_PER_ROUND && !this.context.stopping.aborted; reads++) {
      const chunk = await this.reader.read(file.handle, file.position);
      if (!chunk) {
        atEnd = true;
        break;
      }
      gotData = true;
      file.position += chunk.length;
      const wait = file.framer.push(chunk);
      if (wait) await wait;
    }
    if (gotData) file.lastDataAt = Date.now();
    return { gotData, atEnd };
  }

  /**
   * Looks at each watched name: a new file there is opened, a different file
   * there retires the old one, a shorter file was truncated. True when
   * something changed.
   */
  private async checkNames(fromEnd: boolean, starting: boolean): Promise<boolean> {
    const { pattern } = this.options;
    let names: string[];
    if (!pattern.isPattern) names = [pattern.path];
    else if (this.rescanDue) {
      this.rescanDue = false;
      names = [...new Set([...(await this.listPattern(starting)), ...this.byName.keys()])];
    } else names = [...this.byName.keys()];

    let changed = false;
    for (const path of names) {
      const current = this.byName.get(path);
      let info;
      try {
        info = await stat(path);
      } catch (error) {
        if (isMissing(error)) {
          if (current) changed = this.retire(current) || changed;
          continue;
        }
        if (starting && !pattern.isPattern) throw cannotRead(path, error);
        this.reportOpenFailure(path, error);
        continue;
      }
      if (!info.isFile()) {
        if (starting && !pattern.isPattern) throw cannotRead(path, notARegularFile(info));
        continue;
      }
      if (current && info.ino === current.ino && info.dev === current.dev) {
        if (info.size < current.position) {
          // Truncated (copytruncate): start again from the beginning. A partial
          // line stays held: its rest, if any, is now at the start.
          current.position = 0;
          changed = true;
        }
        continue;
      }
      if (current) this.retire(current);
      try {
        await this.openFile(path, fromEnd);
        this.failing.delete(path);
        changed = true;
      } catch (error) {
        if (isMissing(error)) continue;
        if (starting && !pattern.isPattern) throw cannotRead(path, error);
        this.reportOpenFailure(path, error);
      }
    }
    return changed;
  }

  /** The files the pattern matches now; a folder that cannot be listed is fatal at the start only. */
  private async listPattern(starting: boolean): Promise<string[]> {
    try {
      return await this.options.pattern.list();
    } catch (error) {
      const folder = this.options.pattern.directory;
      if (starting) throw cannotRead(folder, error);
      this.reportOpenFailure(folder, error);
      this.rescanDue = true;
      return [];
    }
  }

  private async openFile(path: string, fromEnd: boolean): Promise<void> {
    const handle = await open(path, 'r');
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw notARegularFile(info);
      const file: TailedFile = {
        path,
        handle,
        dev: info.dev,
        ino: info.ino,
        position: fromEnd ? info.size : 0,
        framer: new LineFramer(this.context, `file:${path}`, this.options.maxLineLength, originOf(this.options.origin, path)),
        lastDataAt: Date.now(),
        retired: false,
      };
      this.files.push(file);
      this.byName.set(path, file);
    } catch (error) {
      await handle.close().catch(() => {});
      throw error;
    }
  }

  /** The name no longer points to `file`; it is still read until quiet. */
  private retire(file: TailedFile): boolean {
    if (file.retired) return false;
    file.retired = true;
    file.lastDataAt = Date.now();
    if (this.byName.get(file.path) === file) this.byName.delete(file.path);
    return true;
  }

  private async closeQuietRetired(): Promise<void> {
    const now = Date.now();
    for (let i = 0; i < this.files.length; i++) {
      const file = this.files[i]!;
      if (!file.retired || now - file.lastDataAt < RETIRED_QUIET_MS) continue;
      // One last look before letting go.
      if ((await this.pump(file)).gotData) continue;
      this.files.splice(i--, 1);
      // Its writer has moved on: a last line without LF will not be finished.
      const wait = file.framer.end();
      if (wait) await wait;
      await file.handle.close().catch(() => {});
    }
  }

  private reportOpenFailure(path: string, error: unknown): void {
    const code = errorCode(error) ?? 'error';
    if (this.failing.get(path) === code) return;
    this.failing.set(path, code);
    this.context.reportError({
      error: 'input',
      reason: `${cannotRead(path, error).message}; trying again every ${this.options.pollInterval} ms`,
      source: `file:${path}`,
    });
  }

  private startWatching(): void {
    if (this.watcher) return;
    try {
      this.watcher = watch(this.options.pattern.directory, { persistent: false }, (event, name) => {
        if (event === 'rename') this.rescanDue = true;
        // A rotated-away file has another name: while one is open, any event may be its.
        if (!name || this.options.pattern.matches(name) || this.files.some((f) => f.retired)) this.wake();
      });
      this.watcher.on('error', () => {
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch {
      // The folder may not exist yet: polling covers it, and watching is tried again.
      this.watcher = undefined;
    }
  }

  private wake(): void {
    this.wakeRequested = true;
    this.wakeUp?.();
  }

  /** Waits for a change notice, the poll interval, or the stop. */
  private sleep(): Promise<void> {
    if (this.wakeRequested || this.context.stopping.aborted) return Promise.resolve();
    const { stopping } = this.context;
    return new Promise<void>((resolveSleep) => {
      const done = () => {
        clearTimeout(timer);
        stopping.removeEventListener('abort', done);
        this.wakeUp = undefined;
        resolveSleep();
      };
      const timer = setTimeout(() => {
        this.rescanDue = true;
        this.startWatching();
        done();
      }, this.options.pollInterval);
      stopping.addEventListener('abort', done, { once: true });
      this.wakeUp = done;
    });
  }
}

/** Where a message came from, as the `origin` option asks: `{file, line}` under that field. */
export function originOf(field: string | undefined, path: string): FrameBatch['annotate'] {
  if (field === undefined) return undefined;
  return (message, line) => {
    message[field] = { file: path, line };
  };
}
