// Python's pickle format, for plain data only. Unpickling with Python's own
// loader runs whatever the pickle asks for (a global, a call, a class): a log
// server that unpickles what strangers send runs their code. This decoder
// knows the opcodes that build None, booleans, numbers, strings, bytes,
// tuples, lists, dicts and sets (protocols 0 to 5), and refuses every other:
// nothing is imported, called or constructed, ever.
import { isUtf8 } from 'node:buffer';
import { defineCodec } from '../core/plugin.js';

/** A pickle this decoder will not, or cannot, turn into data. */
export class UnpickleError extends Error {
  override name = 'UnpickleError';
}

const PLAIN = 'only plain data is accepted (None, booleans, numbers, strings, bytes, tuples, lists, dicts, sets)';

/** Opcodes that would import, call or construct something: refused, with what each would do. */
const REFUSED: Record<number, [name: string, does: string]> = {
  0x63: ['GLOBAL', 'import'],
  0x93: ['STACK_GLOBAL', 'import'],
  0x52: ['REDUCE', 'call a function'],
  0x62: ['BUILD', 'set the state of an object'],
  0x69: ['INST', 'create an instance of a class'],
  0x6f: ['OBJ', 'create an instance of a class'],
  0x81: ['NEWOBJ', 'create an instance of a class'],
  0x92: ['NEWOBJ_EX', 'create an instance of a class'],
  0x82: ['EXT1', 'import from the extension registry'],
  0x83: ['EXT2', 'import from the extension registry'],
  0x84: ['EXT4', 'import from the extension registry'],
  0x50: ['PERSID', 'load a persistent object'],
  0x51: ['BINPERSID', 'load a persistent object'],
  0x97: ['NEXT_BUFFER', 'take an out-of-band buffer'],
  0x98: ['READONLY_BUFFER', 'take an out-of-band buffer'],
};

/**
 * Integers are kept whole up to this many bytes (about 4,300 decimal digits,
 * Python's own limit for turning an int into text).
 */
const MAX_INT_BYTES = 1786;
const MAX_INT_DIGITS = 4300;
/** Containers nested deeper than this are refused: JSON writers recurse. */
const MAX_DEPTH = 1000;
/** What shared references may expand to, at least (see `budget`). */
const MIN_EXPANSION = 1 << 20;
/** ... and at most this many times the pickle's own size. */
const EXPANSION_FACTOR = 16;

const MARK = 0x28;
/** ASCII strings up to this many bytes are looked up in a small cache before they are made. */
const SHORT_STRING = 24;
const SHORT_STRINGS = 512;
/**
 * Recent short ASCII strings, by a hash of their bytes: dict keys found here
 * are already internalized, which made storing them 2x faster (measured on
 * SocketHandler records).
 */
const shortStrings: Array<string | undefined> = new Array(SHORT_STRINGS);

/** Memo indexes below this live in an array: picklers count from 0, one per object. */
const MEMO_ARRAY = 1 << 16;

/**
 * The data a pickle holds, as JSON-friendly values: None is null, integers
 * are numbers (beyond 2^53, decimal strings, so no digit is lost), floats are
 * numbers, bytes and bytearrays are base64 strings, tuples, lists, sets and
 * frozensets are arrays, and dicts are objects whose keys are text (an int,
 * float, bool or None key as Python's json.dumps writes it; a tuple key as its
 * JSON text). Throws UnpickleError for anything else.
 */
export function unpickle(bytes: Uint8Array): unknown {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return new Unpickler(buffer).load();
}

/** unpickle without the shortcut through JSON text: every pickle the long way (tests compare the two). */
export function unpickleGeneral(bytes: Uint8Array): unknown {
  return new Unpickler(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)).load();
}

class Unpickler {
  private at = 0;
  private stack: unknown[] = [];
  /** Stack heights at each MARK. */
  private readonly marks: number[] = [];
  /** The memo: small indexes (what picklers write) in an array, others in a map. */
  private readonly memo: unknown[] = [];
  private memoMap: Map<number, unknown> | undefined;
  /** Arrays that stand for tuples and frozensets (immutable) and for sets (ADDITEMS only). */
  private readonly tuples = new Set<unknown[]>();
  private sets: Set<unknown[]> | undefined;
  /** Containers made so far: with one, there is nothing nested to check at the end. */
  private containers = 0;
  /** A container was fetched from the memo or duplicated: it may be shared, or hold itself. */
  private shared = false;
  /** Values and characters the memo and DUP copied: the output grows by these. */
  private copied = 0;
  private readonly budget: number;

  constructor(private readonly bytes: Buffer) {
    this.budget = Math.max(MIN_EXPANSION, bytes.length * EXPANSION_FACTOR);
  }

  load(): unknown {
    const { bytes } = this;
    const end = bytes.length;
    for (;;) {
      if (this.at >= end) throw this.fail(this.at === 0 ? 'empty frame, not a pickle' : 'the pickle is cut short: it ends before its STOP opcode');
      const start = this.at;
      const op = bytes[this.at++]!;
      switch (op) {
        case 0x2e: // STOP
          return this.finish(start);
        case 0x80: {
          // PROTO
          const version = this.u8();
          if (version > 5) throw this.fail(`pickle protocol ${version} is not known (0 to 5 are)`, start);
          break;
        }
        case 0x95: // FRAME: a length hint for buffered readers; the whole pickle is here
          this.take(8);
          break;
        case 0x4e: // NONE
          this.stack.push(null);
          break;
        case 0x88: // NEWTRUE
          this.stack.push(true);
          break;
        case 0x89: // NEWFALSE
          this.stack.push(false);
          break;
        case 0x4a: // BININT
          this.stack.push(bytes.readInt32LE(this.take(4)));
          break;
        case 0x4b: // BININT1
          this.stack.push(this.u8());
          break;
        case 0x4d: // BININT2
          this.stack.push(bytes.readUInt16LE(this.take(2)));
          break;
        case 0x8a: // LONG1
          this.stack.push(this.long(this.u8(), start));
          break;
        case 0x8b: {
          // LONG4
          const size = bytes.readInt32LE(this.take(4));
          if (size < 0) throw this.fail('LONG4 with a negative length', start);
          this.stack.push(this.long(size, start));
          break;
        }
        case 0x49: // INT: text; "01" and "00" are True and False (protocol 0's booleans)
          this.stack.push(this.textInt(this.line(), start, true));
          break;
        case 0x4c: {
          // LONG: text, with a trailing L in Python 2's form
          const text = this.line();
          this.stack.push(this.textInt(text.endsWith('L') ? text.slice(0, -1) : text, start, false));
          break;
        }
        case 0x47: // BINFLOAT
          this.stack.push(bytes.readDoubleBE(this.take(8)));
          break;
        case 0x46: // FLOAT: text
          this.stack.push(textFloat(this.line(), () => this.fail('FLOAT with text that is not a number', start)));
          break;
        case 0x58: // BINUNICODE
          this.stack.push(this.utf8(bytes.readUInt32LE(this.take(4))));
          break;
        case 0x8c: // SHORT_BINUNICODE
          this.stack.push(this.utf8(this.u8()));
          break;
        case 0x8d: // BINUNICODE8
          this.stack.push(this.utf8(this.size8(start)));
          break;
        case 0x56: // UNICODE: raw-unicode-escape text
          this.stack.push(rawUnicodeEscape(this.lineBytes()));
          break;
        case 0x54: {
          // BINSTRING: a Python 2 str
          const size = bytes.readInt32LE(this.take(4));
          if (size < 0) throw this.fail('BINSTRING with a negative length', start);
          this.stack.push(python2Text(this.slice(size)));
          break;
        }
        case 0x55: // SHORT_BINSTRING
          this.stack.push(python2Text(this.slice(this.u8())));
          break;
        case 0x53: // STRING: a quoted Python 2 str
          this.stack.push(python2Text(quotedString(this.lineBytes(), () => this.fail('STRING that is not a quoted string', start))));
          break;
        case 0x42: // BINBYTES
          this.stack.push(this.slice(bytes.readUInt32LE(this.take(4))).toString('base64'));
          break;
        case 0x43: // SHORT_BINBYTES
          this.stack.push(this.slice(this.u8()).toString('base64'));
          break;
        case 0x8e: // BINBYTES8
        case 0x96: // BYTEARRAY8
          this.stack.push(this.slice(this.size8(start)).toString('base64'));
          break;
        case 0x29: // EMPTY_TUPLE
          this.stack.push(this.tuple([]));
          break;
        case 0x85: // TUPLE1
          this.stack.push(this.tuple(this.popMany(1, start)));
          break;
        case 0x86: // TUPLE2
          this.stack.push(this.tuple(this.popMany(2, start)));
          break;
        case 0x87: // TUPLE3
          this.stack.push(this.tuple(this.popMany(3, start)));
          break;
        case 0x74: // TUPLE
          this.stack.push(this.tuple(this.popMark(start)));
          break;
        case 0x5d: // EMPTY_LIST
          this.containers++;
          this.stack.push([]);
          break;
        case 0x6c: // LIST
          this.containers++;
          this.stack.push(this.popMark(start));
          break;
        case 0x61: {
          // APPEND
          const item = this.pop(start);
          this.list(this.top(start), 'APPEND', start).push(item);
          break;
        }
        case 0x65: {
          // APPENDS
          const items = this.popMark(start);
          const list = this.list(this.top(start), 'APPENDS', start);
          for (const item of items) list.push(item);
          break;
        }
        case 0x7d: // EMPTY_DICT
          this.containers++;
          this.stack.push({});
          break;
        case 0x64: {
          // DICT
          const items = this.popMark(start);
          const dict = {};
          this.containers++;
          for (let i = 0; i + 1 < items.length; i += 2) this.setItem(dict, items[i], items[i + 1], start);
          this.stack.push(dict);
          break;
        }
        case 0x73: {
          // SETITEM
          const value = this.pop(start);
          const key = this.pop(start);
          this.setItem(this.dict(this.top(start), 'SETITEM', start), key, value, start);
          break;
        }
        case 0x75: {
          // SETITEMS
          const items = this.popMark(start);
          const dict = this.dict(this.top(start), 'SETITEMS', start);
          if (items.length % 2 !== 0) throw this.fail('SETITEMS with a key and no value', start);
          for (let i = 0; i < items.length; i += 2) this.setItem(dict, items[i], items[i + 1], start);
          break;
        }
        case 0x8f: {
          // EMPTY_SET
          const set: unknown[] = [];
          this.containers++;
          (this.sets ??= new Set()).add(set);
          this.stack.push(set);
          break;
        }
        case 0x90: {
          // ADDITEMS
          const items = this.popMark(start);
          const set = this.top(start);
          if (!Array.isArray(set) || !this.sets?.has(set)) throw this.fail('ADDITEMS on something that is not a set', start);
          for (const item of items) set.push(hashable(item, this.tuples) ? item : this.unhashable('a set item', start));
          break;
        }
        case 0x91: // FROZENSET
          this.stack.push(this.tuple(this.popMark(start)));
          break;
        case MARK:
          this.marks.push(this.stack.length);
          break;
        case 0x30: // POP
          if (this.marks.at(-1) === this.stack.length) this.marks.pop();
          else this.pop(start);
          break;
        case 0x31: // POP_MARK
          this.popMark(start);
          break;
        case 0x32: // DUP
          this.stack.push(this.copy(this.top(start), start));
          break;
        case 0x71: // BINPUT
          this.put(this.u8(), this.top(start));
          break;
        case 0x72: // LONG_BINPUT
          this.put(bytes.readUInt32LE(this.take(4)), this.top(start));
          break;
        case 0x94: // MEMOIZE: the next index, as Python counts them (entries, not the highest index)
          this.put(this.memoSize, this.top(start));
          break;
        case 0x70: // PUT: text index
          this.put(this.textIndex(start), this.top(start));
          break;
        case 0x68: // BINGET
          this.stack.push(this.get(this.u8(), start));
          break;
        case 0x6a: // LONG_BINGET
          this.stack.push(this.get(bytes.readUInt32LE(this.take(4)), start));
          break;
        case 0x67: // GET: text index
          this.stack.push(this.get(this.textIndex(start), start));
          break;
        default: {
          const refused = REFUSED[op];
          if (refused) throw this.refuse(refused, op, start);
          throw this.fail(`unknown opcode 0x${op.toString(16).padStart(2, '0')}`, start);
        }
      }
    }
  }

  /** STOP: the one value left is the result, once it is known to be a tree of bounded size. */
  private finish(start: number): unknown {
    if (this.stack.length !== 1 || this.marks.length > 0) {
      throw this.fail(`STOP with ${this.stack.length} values on the stack${this.marks.length > 0 ? ' and an open MARK' : ''} (one value was expected)`, start);
    }
    if (this.at !== this.bytes.length) throw this.fail(`${this.bytes.length - this.at} bytes after the end of the pickle (STOP)`, start);
    if (this.copied > this.budget) throw this.expands();
    const value = this.stack[0];
    // Nesting, cycles and what shared references expand to: only a pickle with nested containers can have them.
    if (this.containers > 1 || this.shared) {
      let left = this.budget;
      const path = new Set<object>();
      const visit = (node: unknown, depth: number): void => {
        if (--left < 0) throw this.expands();
        if (typeof node === 'string') {
          left -= node.length;
          return;
        }
        if (typeof node !== 'object' || node === null) return;
        if (depth > MAX_DEPTH) throw new UnpickleError(`containers nested more than ${MAX_DEPTH} deep`);
        if (path.has(node)) throw new UnpickleError('a container holds itself (a cycle), which JSON cannot represent');
        path.add(node);
        if (Array.isArray(node)) for (const item of node) visit(item, depth + 1);
        else for (const key in node) visit((node as Record<string, unknown>)[key], depth + 1);
        path.delete(node);
      };
      visit(value, 0);
    }
    return value;
  }

  private expands(): UnpickleError {
    return new UnpickleError(
      `shared references expand this ${this.bytes.length}-byte pickle past ${this.budget} values and characters (a "billion laughs" pickle?)`,
    );
  }

  private refuse([name, does]: [string, string], op: number, start: number): UnpickleError {
    let what = '';
    if (op === 0x63 || op === 0x69) {
      // GLOBAL and INST name the module and the attribute on two lines: say which, for whoever reads the error.
      const first = this.bytes.indexOf(10, this.at);
      const second = first < 0 ? -1 : this.bytes.indexOf(10, first + 1);
      if (second > 0 && second - this.at < 200) what = ` ${this.bytes.toString('latin1', this.at, first)}.${this.bytes.toString('latin1', first + 1, second)}`;
    } else if (op === 0x93 && this.stack.length >= 2) {
      const [module, attribute] = this.stack.slice(-2);
      if (typeof module === 'string' && typeof attribute === 'string') what = ` ${module.slice(0, 100)}.${attribute.slice(0, 100)}`;
    }
    return this.fail(`refused opcode ${name}: it would ${does}${what}; ${PLAIN}`, start);
  }

  private fail(reason: string, at = this.at): UnpickleError {
    return new UnpickleError(`${reason} (at byte ${at})`);
  }

  /** Moves past `count` bytes and returns where they start. */
  private take(count: number): number {
    const start = this.at;
    if (start + count > this.bytes.length) throw this.fail('the pickle is cut short in the middle of an opcode', start - 1);
    this.at = start + count;
    return start;
  }

  private u8(): number {
    return this.bytes[this.take(1)]!;
  }

  private slice(count: number): Buffer {
    const start = this.take(count);
    return this.bytes.subarray(start, start + count);
  }

  /** The frame as Latin-1 text, made once: ASCII strings are cut from it (measured: 10x faster than decoding each). */
  private latin1: string | undefined;

  private utf8(count: number): string {
    const start = this.take(count);
    const end = start + count;
    const { bytes } = this;
    if (count <= SHORT_STRING && count > 0) {
      // Keys and the values that repeat record after record (levelname, threadName): the same string each time.
      const slot = (count * 31 + bytes[start]! * 7 + bytes[end - 1]! * 3 + bytes[start + (count >> 1)]!) & (SHORT_STRINGS - 1);
      const known = shortStrings[slot];
      if (known !== undefined && known.length === count) {
        let same = true;
        for (let i = 0; i < count; i++) {
          if (known.charCodeAt(i) !== bytes[start + i]) {
            same = false;
            break;
          }
        }
        if (same) return known;
      }
      for (let i = start; i < end; i++) if (bytes[i]! >= 0x80) return bytes.toString('utf8', start, end);
      const text = (this.latin1 ??= bytes.toString('latin1')).substring(start, end);
      shortStrings[slot] = text;
      return text;
    }
    for (let i = start; i < end; i++) if (bytes[i]! >= 0x80) return bytes.toString('utf8', start, end);
    return (this.latin1 ??= bytes.toString('latin1')).substring(start, end);
  }

  /** An 8-byte length, which must fit in what is left of the frame. */
  private size8(start: number): number {
    const at = this.take(8);
    const size = this.bytes.readUInt32LE(at) + this.bytes.readUInt32LE(at + 4) * 2 ** 32;
    if (size > this.bytes.length - this.at) throw this.fail('the pickle is cut short: a length runs past its end', start);
    return size;
  }

  private lineBytes(): Buffer {
    const end = this.bytes.indexOf(10, this.at);
    if (end < 0) throw this.fail('the pickle is cut short: a text opcode has no end of line');
    const line = this.bytes.subarray(this.at, end);
    this.at = end + 1;
    return line;
  }

  private line(): string {
    return this.lineBytes().toString('latin1');
  }

  private textIndex(start: number): number {
    const text = this.line();
    if (!/^\d{1,10}$/.test(text)) throw this.fail('PUT or GET with an index that is not a number', start);
    return Number(text);
  }

  private textInt(text: string, start: number, booleans: boolean): unknown {
    if (booleans && text === '01') return true;
    if (booleans && text === '00') return false;
    // Fifteen digits are always below 2^53: the common case needs no BigInt.
    if (/^-?\d{1,15}$/.test(text)) return Number(text);
    const digits = text.trim().replace(/_/g, '');
    if (!/^[+-]?\d+$/.test(digits)) throw this.fail('INT or LONG with text that is not an integer', start);
    if (digits.replace(/^[+-]/, '').length > MAX_INT_DIGITS) throw this.fail(`an integer of more than ${MAX_INT_DIGITS} digits`, start);
    return integer(BigInt(digits));
  }

  /** LONG1 and LONG4: little-endian two's complement. */
  private long(size: number, start: number): unknown {
    if (size > MAX_INT_BYTES) throw this.fail(`an integer of ${size} bytes (at most ${MAX_INT_BYTES} are taken)`, start);
    const bytes = this.slice(size);
    if (size === 0) return 0;
    if (size <= 6) return bytes.readIntLE(0, size);
    let value = 0n;
    for (let i = size - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]!);
    if (bytes[size - 1]! >= 0x80) value -= 1n << BigInt(size * 8);
    return integer(value);
  }

  private pop(start: number): unknown {
    const floor = this.marks.at(-1) ?? 0;
    if (this.stack.length <= floor) throw this.fail('an opcode needs a value and the stack (past the last MARK) is empty', start);
    return this.stack.pop();
  }

  private top(start: number): unknown {
    if (this.stack.length <= (this.marks.at(-1) ?? 0)) throw this.fail('an opcode needs a value and the stack (past the last MARK) is empty', start);
    return this.stack[this.stack.length - 1];
  }

  private popMany(count: number, start: number): unknown[] {
    const floor = this.marks.at(-1) ?? 0;
    if (this.stack.length - count < floor) throw this.fail(`a tuple of ${count} and fewer values on the stack`, start);
    return this.stack.splice(this.stack.length - count, count);
  }

  /** The values since the last MARK, which is removed. */
  private popMark(start: number): unknown[] {
    const mark = this.marks.pop();
    if (mark === undefined) throw this.fail('an opcode needs a MARK and there is none', start);
    return this.stack.splice(mark);
  }

  private tuple(items: unknown[]): unknown[] {
    this.containers++;
    this.tuples.add(items);
    return items;
  }

  private list(value: unknown, opcode: string, start: number): unknown[] {
    if (!Array.isArray(value) || this.tuples.has(value) || this.sets?.has(value)) throw this.fail(`${opcode} on something that is not a list`, start);
    return value;
  }

  private dict(value: unknown, opcode: string, start: number): Record<string, unknown> {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw this.fail(`${opcode} on something that is not a dict`, start);
    return value as Record<string, unknown>;
  }

  private setItem(dict: Record<string, unknown>, key: unknown, value: unknown, start: number): void {
    let name: string;
    if (typeof key === 'string') name = key;
    else if (key === null) name = 'null';
    else if (typeof key === 'number' || typeof key === 'boolean') name = String(key);
    else if (hashable(key, this.tuples)) name = JSON.stringify(key);
    else return this.unhashable('a dict key', start);
    // An own property, as JSON.parse makes it, never the prototype.
    if (name === '__proto__') Object.defineProperty(dict, name, { value, enumerable: true, writable: true, configurable: true });
    else dict[name] = value;
  }

  private unhashable(what: string, start: number): never {
    throw this.fail(`${what} that is a list, dict or set (Python cannot hash it)`, start);
  }

  /** Entries in the memo. */
  private memoSize = 0;

  private put(index: number, value: unknown): void {
    if (index < MEMO_ARRAY) {
      if (index >= this.memo.length) {
        // Holes stay holes (undefined never is a value here: None is null).
        while (this.memo.length < index) this.memo.push(undefined);
        this.memo.push(value);
        this.memoSize++;
        return;
      }
      if (this.memo[index] === undefined) this.memoSize++;
      this.memo[index] = value;
      return;
    }
    this.memoMap ??= new Map();
    if (!this.memoMap.has(index)) this.memoSize++;
    this.memoMap.set(index, value);
  }

  private get(index: number, start: number): unknown {
    const value = index < MEMO_ARRAY ? this.memo[index] : this.memoMap?.get(index);
    if (value === undefined) throw this.fail(`GET of memo entry ${index}, which was never PUT`, start);
    return this.copy(value, start);
  }

  /** A second reference to `value`: it costs the output its size again. */
  private copy(value: unknown, start: number): unknown {
    this.copied++;
    if (typeof value === 'string') this.copied += value.length;
    else if (typeof value === 'object' && value !== null) this.shared = true;
    if (this.copied > this.budget) throw this.fail(this.expands().message, start);
    return value;
  }
}

/** A number when it is exact, else its decimal digits. */
function integer(value: bigint): number | string {
  return value >= -9007199254740991n && value <= 9007199254740991n ? Number(value) : value.toString();
}

/** Python hashes scalars and tuples of hashable values, never lists, dicts or sets. */
function hashable(value: unknown, tuples: ReadonlySet<unknown[]>): boolean {
  if (typeof value !== 'object' || value === null) return true;
  return Array.isArray(value) && tuples.has(value) && value.every((item) => hashable(item, tuples));
}

function textFloat(text: string, fail: () => Error): number {
  const t = text.trim().toLowerCase();
  if (t === 'inf' || t === '+inf' || t === 'infinity' || t === '+infinity') return Infinity;
  if (t === '-inf' || t === '-infinity') return -Infinity;
  if (t === 'nan' || t === '+nan' || t === '-nan') return NaN;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/.test(t)) throw fail();
  return Number(t);
}

/** A Python 2 str: its bytes, as UTF-8 when they are, else as Latin-1 (every byte a character). */
function python2Text(bytes: Buffer): string {
  const text = bytes.toString('utf8');
  return text.includes('\uFFFD') && Buffer.byteLength(text) !== bytes.length ? bytes.toString('latin1') : text;
}

const SIMPLE_ESCAPES: Record<string, number> = { '\\': 92, "'": 39, '"': 34, a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11 };

/** The bytes of a quoted Python 2 string literal ('...' or "...") with its escapes. */
function quotedString(line: Buffer, fail: () => Error): Buffer {
  const text = line.toString('latin1');
  const quote = text[0];
  if (text.length < 2 || (quote !== "'" && quote !== '"') || text[text.length - 1] !== quote) throw fail();
  const out: number[] = [];
  for (let i = 1; i < text.length - 1; i++) {
    const char = text[i]!;
    if (char !== '\\') {
      out.push(char.charCodeAt(0));
      continue;
    }
    const next = text[++i];
    if (next === undefined) throw fail();
    if (next in SIMPLE_ESCAPES) out.push(SIMPLE_ESCAPES[next]!);
    else if (next === '\n') continue;
    else if (next === 'x' && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 1, i + 3))) {
      out.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (/[0-7]/.test(next)) {
      const octal = /^[0-7]{1,3}/.exec(text.slice(i))![0];
      out.push(parseInt(octal, 8) & 0xff);
      i += octal.length - 1;
    } else out.push(92, next.charCodeAt(0));
  }
  return Buffer.from(out);
}

/** Python's raw-unicode-escape: Latin-1 text where \uXXXX and \UXXXXXXXX stand for other characters. */
function rawUnicodeEscape(line: Buffer): string {
  const text = line.toString('latin1');
  return text.replace(/\\(?:u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8}))/g, (whole, four: string | undefined, eight: string | undefined) => {
    const code = parseInt(four ?? eight!, 16);
    return code <= 0x10ffff ? String.fromCodePoint(code) : whole;
  });
}

// ---------------------------------------------------------------------------
// The shortcut: a dict of scalars, the shape of every record SocketHandler
// sends, straight to the bytes of the JSON text JSON.stringify(unpickle(bytes))
// would write, without making the object or its strings: string bytes are
// copied as they are when they need no escape (measured on SocketHandler
// records: 2x the speed of unpickling and encoding). Anything else (nested
// containers, big or odd numbers, a key JSON.stringify would move, a repeated
// key) answers false, and the general unpickler takes it: the two agree on
// everything both take.

const SETITEM = 0x73;
const SETITEMS = 0x75;
const STOP = 0x2e;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** No value was just made: a PUT here is not one a pickler writes. */
const NO_VALUE = -2;
/** What the shortcut expects next. */
const KEY = 0;
const VALUE = 1;
/** A pair outside a MARK: its SETITEM. */
const PAIR = 2;

/** Bytes written one after another into a buffer that grows: the JSON the shortcut writes (shared by the frames of a batch), and the pickles the encoder writes. */
export class GrowingBytes {
  buffer: Buffer;
  used = 0;

  constructor(size = 64 << 10) {
    this.buffer = Buffer.allocUnsafe(size);
  }

  room(count: number): void {
    if (this.used + count <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.used + count));
    this.buffer.copy(grown, 0, 0, this.used);
    this.buffer = grown;
  }

  byte(value: number): void {
    this.room(1);
    this.buffer[this.used++] = value;
  }

  utf8(text: string): void {
    this.room(Buffer.byteLength(text));
    this.used += this.buffer.write(text, this.used, 'utf8');
  }
}

/** Memo entries of the pickle being read: where each value's JSON starts and ends in the output; -1: not a scalar. */
const memoStart = new Int32Array(256);
const memoEnd = new Int32Array(256);
/** Keys of the dict being read: where each starts and ends in the output. */
const keyStart: number[] = [];
const keyEnd: number[] = [];
/** Which hash slots the keys took: a second key in one slot is compared with the others. */
const keySlots = new Uint32Array(16);
/** What a byte of a string asks of JSON: nothing, an escape (a control character, a quote, a backslash), or a UTF-8 check. */
const ESCAPE = 1;
const NON_ASCII = 2;
const BYTE_KIND = new Uint8Array(256).fill(ESCAPE, 0, 0x20).fill(NON_ASCII, 0x80);
BYTE_KIND[QUOTE] = ESCAPE;
BYTE_KIND[BACKSLASH] = ESCAPE;

/** Strings longer than this are decoded and escaped by V8 rather than copied byte by byte. */
const LONG_STRING = 48;
const SMALL_INTS = Array.from({ length: 256 }, (_, i) => String(i));

/**
 * Appends to `out` the JSON of a pickle that holds a dict of scalars and
 * returns true; for any other pickle returns false with `out` as it was.
 * One loop, state in locals (closures over it ran 2x slower).
 */
export function pickleJsonInto(b: Buffer, out: GrowingBytes): boolean {
  const end = b.length;
  const base = out.used;
  // JSON is never longer than 6 bytes per pickle byte (a control character as \u00XX), plus a little for numbers.
  out.room(end * 6 + 64);
  const o = out.buffer;
  let w = base;
  let at = 0;
  let memoCount = 0;
  let copied = 0;
  const budget = Math.max(MIN_EXPANSION, end * EXPANSION_FACTOR);
  let keys = 0;
  keySlots.fill(0);
  let batch = false;
  let started = false;
  let expect = KEY;
  /** The last value written: what a PUT stores (-1: the dict itself). */
  let valueStart = NO_VALUE;
  let valueEnd = -1;
  const fail = (): boolean => {
    out.used = base;
    return false;
  };
  while (at < end) {
    const op = b[at++]!;
    // Before a value: a separator and, for a value, the key was written already.
    if (op === 0x71 || op === 0x94) {
      // BINPUT, MEMOIZE: picklers that use MEMOIZE use it for every entry, so the count is the next index.
      let index: number;
      if (op === 0x71) {
        if (at >= end) return fail();
        index = b[at++]!;
      } else index = memoCount;
      // A PUT stores the value just made; right after MARK or SETITEM(S) there is none (the long way reports it).
      if (index >= 256 || valueStart === NO_VALUE) return fail();
      memoStart[index] = valueStart;
      memoEnd[index] = valueEnd;
      if (index >= memoCount) {
        for (let i = memoCount; i < index; i++) memoStart[i] = -1;
        memoCount = index + 1;
      }
      continue;
    }
    if (op === MARK) {
      if (!started || batch || expect !== KEY) return fail();
      batch = true;
      valueStart = NO_VALUE;
      continue;
    }
    if (op === SETITEMS) {
      if (!batch || expect !== KEY) return fail();
      batch = false;
      valueStart = NO_VALUE;
      continue;
    }
    if (op === SETITEM) {
      if (expect !== PAIR) return fail();
      expect = KEY;
      valueStart = NO_VALUE;
      continue;
    }
    if (op === STOP) {
      if (!started || batch || expect !== KEY || at !== end) return fail();
      o[w++] = 0x7d;
      out.used = w;
      return true;
    }
    if (!started) {
      if (op === 0x80) {
        // PROTO
        if (at >= end || b[at++]! > 5) return fail();
      } else if (op === 0x95) {
        // FRAME
        at += 8;
      } else if (op === 0x7d) {
        // EMPTY_DICT: the dict itself may be memoized, as what no GET may take.
        started = true;
        o[w++] = 0x7b;
        valueStart = -1;
        valueEnd = -1;
      } else return fail();
      continue;
    }
    if (expect === PAIR) return fail();
    const isKey = expect === KEY;
    if (isKey) {
      if (keys > 0) o[w++] = 0x2c;
    }
    const start = w;
    switch (op) {
      case 0x58: // BINUNICODE
      case 0x8c: {
        // SHORT_BINUNICODE
        let count: number;
        if (op === 0x58) {
          if (at + 4 > end) return fail();
          count = b.readUInt32LE(at);
          at += 4;
        } else {
          if (at >= end) return fail();
          count = b[at++]!;
        }
        if (count > end - at) return fail();
        const stop = at + count;
        if (count > LONG_STRING) {
          // V8's own string escaping beats a byte loop here (measured: 4x on tracebacks).
          w += o.write(JSON.stringify(b.toString('utf8', at, stop)), w, 'utf8');
          at = stop;
          break;
        }
        o[w++] = QUOTE;
        // Copied while looked at (strings here are short): a byte that needs an escape undoes the copy.
        let kinds = 0;
        for (let i = at; i < stop; i++) {
          const c = b[i]!;
          kinds |= BYTE_KIND[c]!;
          o[w++] = c;
        }
        if (kinds === 0 || (kinds === NON_ASCII && isUtf8(b.subarray(at, stop)))) o[w++] = QUOTE;
        else {
          // Escapes, or bytes that are not UTF-8 (decoded with U+FFFD, as the general path does): JSON.stringify's own text.
          w = start;
          w += o.write(JSON.stringify(b.toString('utf8', at, stop)), w, 'utf8');
        }
        at = stop;
        break;
      }
      case 0x4b: {
        // BININT1
        if (at >= end) return fail();
        const text = SMALL_INTS[b[at++]!]!;
        w = ascii(o, w, text);
        break;
      }
      case 0x4d: // BININT2
        if (at + 2 > end) return fail();
        w = ascii(o, w, String(b.readUInt16LE(at)));
        at += 2;
        break;
      case 0x4a: // BININT
        if (at + 4 > end) return fail();
        w = ascii(o, w, String(b.readInt32LE(at)));
        at += 4;
        break;
      case 0x47: {
        // BINFLOAT
        if (at + 8 > end) return fail();
        const number = b.readDoubleBE(at);
        at += 8;
        // NaN and the infinities stay numbers in the general path, and -0 stays -0.
        if (!Number.isFinite(number) || (number === 0 && 1 / number < 0)) return fail();
        w = ascii(o, w, String(number));
        break;
      }
      case 0x4e: // NONE
        w = ascii(o, w, 'null');
        break;
      case 0x88: // NEWTRUE
        w = ascii(o, w, 'true');
        break;
      case 0x89: // NEWFALSE
        w = ascii(o, w, 'false');
        break;
      case 0x49: // INT
      case 0x4c: {
        // LONG
        const stop = b.indexOf(10, at);
        if (stop < 0) return fail();
        let text = b.toString('latin1', at, stop);
        at = stop + 1;
        if (op === 0x49 && (text === '01' || text === '00')) text = text === '01' ? 'true' : 'false';
        else {
          if (op === 0x4c && text.endsWith('L')) text = text.slice(0, -1);
          if (!/^-?\d{1,15}$/.test(text)) return fail();
          const number = Number(text);
          if (Object.is(number, -0)) return fail();
          text = String(number);
        }
        w = ascii(o, w, text);
        break;
      }
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        let index: number;
        if (op === 0x68) {
          if (at >= end) return fail();
          index = b[at++]!;
        } else {
          if (at + 4 > end) return fail();
          index = b.readUInt32LE(at);
          at += 4;
        }
        if (index >= memoCount || memoStart[index]! < 0) return fail();
        const from = memoStart[index]!;
        const to = memoEnd[index]!;
        copied += to - from + 1;
        // Room was made for what the pickle's own bytes can become; a copy may need more: the long way then.
        if (copied > budget || w + (to - from) + 6 * (end - at) + 64 > o.length) return fail();
        w += o.copy(o, w, from, to);
        break;
      }
      default:
        return fail();
    }
    valueStart = start;
    valueEnd = w;
    if (isKey) {
      // A string that JSON.stringify would leave in its place (not integer-like), seen once in this dict.
      if (o[start] !== QUOTE) return fail();
      const first = o[start + 1]!;
      if (first >= 0x30 && first <= 0x39) return fail();
      const length = w - start;
      const slot = (length * 31 + first * 7 + o[w - 2]! * 3 + o[start + (length >> 1)]!) & 511;
      const bit = 1 << (slot & 31);
      if (keySlots[slot >> 5]! & bit) {
        for (let k = 0; k < keys; k++) {
          if (keyEnd[k]! - keyStart[k]! === length && o.compare(o, start, w, keyStart[k]!, keyEnd[k]!) === 0) return fail();
        }
      } else keySlots[slot >> 5]! |= bit;
      keyStart[keys] = start;
      keyEnd[keys] = w;
      keys++;
      o[w++] = 0x3a;
      expect = VALUE;
    } else expect = batch ? KEY : PAIR;
  }
  return fail();
}

/** Writes the characters of `text` (all below 256) at `at`; returns where they end. */
function ascii(o: Buffer, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) o[at++] = text.charCodeAt(i);
  return at;
}


// ---------------------------------------------------------------------------
// Encoding: what Python's pickle.dumps(value, 1) writes, the form
// logging.handlers.SocketHandler sends (each string, dict and list memoized
// with BINPUT as Python does, so a plain dict pickles to the same bytes).

const BATCH = 1000;

class PickleWriter extends GrowingBytes {
  private memoized = 0;
  /** Objects on the path being written: a cycle cannot be pickled as data. */
  private readonly path = new Set<object>();

  constructor() {
    super(1024);
  }

  result(): Buffer {
    return Buffer.from(this.buffer.subarray(0, this.used));
  }

  ascii(text: string): void {
    this.room(text.length);
    this.used += this.buffer.write(text, this.used, 'latin1');
  }

  private memoize(): void {
    const index = this.memoized++;
    if (index < 256) {
      this.room(2);
      this.buffer[this.used++] = 0x71; // BINPUT
      this.buffer[this.used++] = index;
    } else {
      this.room(5);
      this.buffer[this.used++] = 0x72; // LONG_BINPUT
      this.used = this.buffer.writeUInt32LE(index, this.used);
    }
  }

  value(value: unknown, depth: number): void {
    if (value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
      // As the JSON encoder does: a Date becomes its ISO text.
      value = (value as { toJSON(): unknown }).toJSON();
    }
    switch (typeof value) {
      case 'string':
        return this.string(value);
      case 'number':
        if (Number.isSafeInteger(value)) return this.int(BigInt(value));
        this.room(9);
        this.buffer[this.used++] = 0x47; // BINFLOAT
        this.used = this.buffer.writeDoubleBE(value, this.used);
        return;
      case 'bigint':
        return this.int(value);
      case 'boolean':
        return this.ascii(value ? 'I01\n' : 'I00\n');
      case 'undefined':
        return this.byte(0x4e);
      case 'object':
        if (value === null) return this.byte(0x4e);
        if (depth > MAX_DEPTH) throw new Error(`cannot pickle containers nested more than ${MAX_DEPTH} deep`);
        if (this.path.has(value)) throw new Error('cannot pickle a value that holds itself (a cycle)');
        this.path.add(value);
        if (Array.isArray(value)) this.list(value, depth);
        else this.dict(value as Record<string, unknown>, depth);
        this.path.delete(value);
        return;
      default:
        throw new Error(`cannot pickle a ${typeof value}`);
    }
  }

  string(text: string): void {
    const length = Buffer.byteLength(text);
    this.room(5 + length);
    this.buffer[this.used++] = 0x58; // BINUNICODE
    this.used = this.buffer.writeUInt32LE(length, this.used);
    this.used += this.buffer.write(text, this.used, 'utf8');
    this.memoize();
  }

  private int(value: bigint): void {
    if (value >= 0n && value <= 0xffn) {
      this.byte(0x4b); // BININT1
      this.byte(Number(value));
    } else if (value >= 0n && value <= 0xffffn) {
      this.room(3);
      this.buffer[this.used++] = 0x4d; // BININT2
      this.used = this.buffer.writeUInt16LE(Number(value), this.used);
    } else if (value >= -0x80000000n && value <= 0x7fffffffn) {
      this.room(5);
      this.buffer[this.used++] = 0x4a; // BININT
      this.used = this.buffer.writeInt32LE(Number(value), this.used);
    } else {
      // Protocol 1 has no binary long: Python writes the digits.
      this.ascii(`L${value}L\n`);
    }
  }

  private list(items: readonly unknown[], depth: number): void {
    this.byte(0x5d); // EMPTY_LIST
    this.memoize();
    for (let from = 0; from < items.length; from += BATCH) {
      const to = Math.min(items.length, from + BATCH);
      if (to - from === 1) {
        this.value(items[from], depth + 1);
        this.byte(0x61); // APPEND
        continue;
      }
      this.byte(MARK);
      for (let i = from; i < to; i++) this.value(items[i], depth + 1);
      this.byte(0x65); // APPENDS
    }
  }

  private dict(object: Record<string, unknown>, depth: number): void {
    this.byte(0x7d); // EMPTY_DICT
    this.memoize();
    const keys: string[] = [];
    // As JSON.stringify does: a property holding undefined, a function or a symbol is left out.
    for (const key of Object.keys(object)) {
      const type = typeof object[key];
      if (type !== 'undefined' && type !== 'function' && type !== 'symbol') keys.push(key);
    }
    for (let from = 0; from < keys.length; from += BATCH) {
      const to = Math.min(keys.length, from + BATCH);
      if (to - from > 1) this.byte(MARK);
      for (let i = from; i < to; i++) {
        this.string(keys[i]!);
        this.value(object[keys[i]!], depth + 1);
      }
      this.byte(to - from > 1 ? 0x75 : 0x73); // SETITEMS, SETITEM
    }
  }
}

/** pickle.dumps(value, 1): protocol 1, as SocketHandler.makePickle writes a record's dict. */
export function pickleProtocol1(value: unknown): Buffer {
  const writer = new PickleWriter();
  writer.value(value, 0);
  writer.byte(0x2e); // STOP
  return writer.result();
}

export default defineCodec({
  summary: "Python's pickle format, plain data only: never runs what it decodes.",
  description: [
    'Decoding takes one pickle per frame (protocols 0 to 5) and accepts plain data only: None, booleans, integers (big ones too), floats, ' +
      'strings, bytes, tuples, lists, dicts and sets. A pickle that asks for a global, a call (reduce), an object state (build) or a class ' +
      'instance is refused before anything happens: the frame goes to the error output with a base64 copy and the stream goes on. ' +
      'Nothing is ever imported or called, unlike Python\'s pickle.loads.',
    'In the message, None is null; an integer beyond 2^53 is a string of its digits (so none is lost); bytes are base64 strings; ' +
      'tuples and sets are lists; dict keys are text (an int, float, bool or None key as json.dumps writes it). ' +
      'Protocols 0 to 2 write bytes, sets, dates and any object as a call, which is refused like any other: ' +
      "SocketHandler's records (strings, numbers, None) never need one. A pickle whose shared references would expand it more than 16 times " +
      '(at least to 1 MiB), that nests deeper than 1000 or that holds itself is refused too.',
    'Encoding writes pickle protocol 1, as pickle.dumps(message, 1) and SocketHandler do: objects become dicts, arrays lists, ' +
      'whole numbers ints and others floats. It makes binary frames: use it with a length-framed output (TCP with framing "length").',
  ].join('\n\n'),
  examples: [
    `message-passing --input TCP --input_options '{bind: "127.0.0.1:9020", framing: "length"}' --decoder Pickle`,
    `message-passing --input STDIN --output TCP --output_options '{connect: "127.0.0.1:9020", framing: "length"}' --encoder Pickle`,
  ],
  options: {},
  create: () => ({ form: 'bytes', decode: (frame) => unpickle(frame as Buffer), encode: pickleProtocol1 }),
});
