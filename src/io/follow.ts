import { watch, type FSWatcher } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { FileError, notARegularFile, type FilePattern } from './files.js';
import { DescriptorReader, type ReadableFramer } from './reader.js';
import { errorCode, isMissing } from './system-errors.js';

/** Reads per file per round, so one busy file cannot starve the others. */
const READS_PER_ROUND = 8;
/**
 * A file that lost its name (rotated away or deleted) is still read until it
 * has been quiet this long: writers often go on writing to it for a moment,
 * until they reopen their log (logrotate's postrotate).
 */
export const RETIRED_QUIET_MS = 5000;

/** A file being read, known by its inode: the name may move on to another file. */
interface TailedFile extends OpenedFile {
  handle: FileHandle;
  /** Offset of the next byte to read. */
  position: number;
  /** Bytes pushed to its framer so far. */
  pushed: number;
  framer: ReadableFramer;
  reader: DescriptorReader;
  /** When the file last gave data (or was opened). */
  lastDataAt: number;
  /** Set once its name points elsewhere: it is closed after RETIRED_QUIET_MS without data. */
  retired: boolean;
}

/** A file the follower opened: what its framer's offsets mean. */
export interface OpenedFile {
  readonly path: string;
  readonly dev: number;
  readonly ino: number;
  /**
   * The file offset of its framer's offset 0: a frame ending at framer offset E
   * ends at file offset base + E (at or below 0: before a truncation, no longer in the file).
   */
  base: number;
}

export interface FollowOptions {
  pattern: FilePattern;
  /** Start at the end of the files that exist when following starts. */
  fromEnd: boolean;
  pollInterval: number;
  /** The framer for a file just opened. */
  framer(file: OpenedFile, handle: FileHandle): ReadableFramer;
  /** Where to start reading a file first seen (a checkpoint may know); default: its start, or its end with fromEnd. */
  startAt?(file: OpenedFile, handle: FileHandle, size: number): Promise<number | undefined>;
  /** Files to read the rest of before anything else, retired (a checkpointed file rotated away meanwhile). */
  leftovers?(): Promise<Array<{ path: string; position: number }>>;
  /** A file that cannot be opened now (reported once per cause); it is tried again. */
  report(path: string, error: FileError): void;
  /** On stop, whether a last line without LF is framed (true) or left in the file for the next run. */
  endPartialOnStop: boolean;
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
  private watcher: FSWatcher | undefined;
  private wakeRequested = false;
  private wakeUp: (() => void) | undefined;
  /** The folder must be listed again (a file may have appeared). */
  private rescanDue = true;

  constructor(
    private readonly options: FollowOptions,
    private readonly stopping: AbortSignal,
  ) {}

  async run(): Promise<void> {
    const { stopping } = this;
    this.startWatching();
    let failed = false;
    try {
      for (const { path, position } of (await this.options.leftovers?.()) ?? []) {
        await this.openFile(path, position).then((file) => this.retire(file), () => undefined);
      }
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
        if (!failed && this.options.endPartialOnStop) await file.framer.end();
        await file.handle.close().catch(() => {});
      }
    }
  }

  /** Reads what `file` has now, a bounded amount per round. */
  private async pump(file: TailedFile): Promise<{ gotData: boolean; atEnd: boolean }> {
    let gotData = false;
    let atEnd = false;
    for (let reads = 0; reads < READS_PER_ROUND && !this.stopping.aborted; reads++) {
      const count = file.reader.read(file.position);
      if (count <= 0) {
        atEnd = true;
        break;
      }
      gotData = true;
      file.position += count;
      file.pushed += count;
      if (file.reader.wait) await file.reader.wait;
    }
    if (gotData) file.lastDataAt = Date.now();
    else file.reader.idle();
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
          if (current) changed = this.retire(current, path) || changed;
          continue;
        }
        if (starting && !pattern.isPattern) throw new FileError(path, error);
        this.reportOpenFailure(path, error);
        continue;
      }
      if (!info.isFile()) {
        if (starting && !pattern.isPattern) throw new FileError(path, notARegularFile(info));
        continue;
      }
      if (current && info.ino === current.ino && info.dev === current.dev) {
        if (info.size < current.position) {
          // Truncated (copytruncate): start again from the beginning. A partial
          // line stays held: its rest, if any, is now at the start.
          current.position = 0;
          current.base = -current.pushed;
          changed = true;
        }
        continue;
      }
      if (current) this.retire(current, path);
      const known = this.files.find((f) => f.dev === info.dev && f.ino === info.ino);
      if (known) {
        // A file already open, under another name the pattern matches (rotated to it, a
        // hard link): read on where it is, not a second time from its start.
        this.byName.set(path, known);
        known.retired = false;
        changed = true;
        continue;
      }
      try {
        await this.openFile(path, fromEnd ? 'end' : 'start');
        this.failing.delete(path);
        changed = true;
      } catch (error) {
        if (isMissing(error)) continue;
        if (starting && !pattern.isPattern) throw new FileError(path, error);
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
      if (starting) throw new FileError(folder, error);
      this.reportOpenFailure(folder, error);
      this.rescanDue = true;
      return [];
    }
  }

  /** Opens `path` at `at` (a position, or its start or end unless a checkpoint knows better). */
  private async openFile(path: string, at: number | 'start' | 'end'): Promise<TailedFile> {
    const handle = await open(path, 'r');
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw notARegularFile(info);
      const opened: OpenedFile = { path, dev: info.dev, ino: info.ino, base: 0 };
      let position = typeof at === 'number' ? at : await this.options.startAt?.(opened, handle, info.size);
      position ??= at === 'end' ? info.size : 0;
      opened.base = position;
      const framer = this.options.framer(opened, handle);
      const file: TailedFile = Object.assign(opened, {
        handle,
        position,
        pushed: 0,
        framer,
        reader: new DescriptorReader(handle.fd, framer),
        lastDataAt: Date.now(),
        retired: false,
      });
      this.files.push(file);
      this.byName.set(path, file);
      return file;
    } catch (error) {
      await handle.close().catch(() => {});
      throw error;
    }
  }

  /** `path` no longer points to `file`; with no name left, it is still read until quiet. */
  private retire(file: TailedFile, path = file.path): boolean {
    if (this.byName.get(path) === file) this.byName.delete(path);
    if (file.retired) return false;
    for (const named of this.byName.values()) if (named === file) return false;
    file.retired = true;
    file.lastDataAt = Date.now();
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
    this.options.report(path, new FileError(path, error));
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
    if (this.wakeRequested || this.stopping.aborted) return Promise.resolve();
    const { stopping } = this;
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
