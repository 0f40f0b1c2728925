// The pure parts of the network plugins: addresses, rate-limited reports,
// datagram batches, length-prefixed frames.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BatchingSink, formatAddress, parseAddress, RateLimitedReport } from '../../src/common/net.js';
import { lengthPrefixed } from '../../src/common/tcp-sender.js';
import { RecordingSink } from './recording-sink.js';

describe('parseAddress', () => {
  it('a port alone means loopback, * every interface', () => {
    expect(parseAddress('9020', true)).toEqual({ host: '127.0.0.1', port: 9020 });
    expect(parseAddress(':9020', true)).toEqual({ host: '127.0.0.1', port: 9020 });
    expect(parseAddress('*:9020', true)).toEqual({ host: undefined, port: 9020 });
    expect(parseAddress('0.0.0.0:9020', true)).toEqual({ host: '0.0.0.0', port: 9020 });
    expect(parseAddress('[::1]:9020', true)).toEqual({ host: '::1', port: 9020 });
    expect(parseAddress('logs.example.com:5000', false)).toEqual({ host: 'logs.example.com', port: 5000 });
  });

  it('says what is wrong, and what was expected', () => {
    expect(() => parseAddress('localhost', true)).toThrow("malformed address 'localhost' (expected HOST:PORT such as 127.0.0.1:9020, *:9020 (every interface) or a port alone (loopback))");
    expect(() => parseAddress('::1:9020', true)).toThrow(/malformed address/);
    expect(() => parseAddress('host:70000', false)).toThrow("port of 'host:70000' must be a number from 1 to 65535");
    expect(() => parseAddress('9020', false)).toThrow("'9020' has no host");
    expect(() => parseAddress('*:9020', false)).toThrow("a connection needs a host, not '*'");
    expect(() => parseAddress('host:0', false)).toThrow(/from 1 to 65535/);
  });

  it('formats as a person writes it', () => {
    expect(formatAddress({ host: undefined, port: 1 })).toBe('*:1');
    expect(formatAddress({ host: '::1', port: 2 })).toBe('[::1]:2');
    expect(formatAddress({ host: '127.0.0.1', port: 3 })).toBe('127.0.0.1:3');
  });
});

describe('RateLimitedReport', () => {
  afterEach(() => vi.useRealTimers());

  it('reports the first at once, then at most once per interval with the count, and what is left on flush', () => {
    vi.useFakeTimers();
    const reports: number[] = [];
    const report = new RateLimitedReport((count) => reports.push(count), 1000);
    report.add();
    for (let i = 0; i < 50; i++) report.add();
    expect(reports).toEqual([1]);
    vi.advanceTimersByTime(1000);
    expect(reports).toEqual([1, 50]);
    vi.advanceTimersByTime(5000);
    expect(reports).toEqual([1, 50]);
    report.add();
    report.add();
    report.flush();
    expect(reports).toEqual([1, 50, 1, 1]);
  });
});

describe('BatchingSink', () => {
  it('hands frames on in one batch at the next turn, skipped numbers standing as empty frames', async () => {
    const inner = new RecordingSink('bytes');
    const sink = new BatchingSink(inner);
    sink.frames([Buffer.from('a')], 1, 1);
    sink.frames([Buffer.from('c')], 3, 3);
    expect(inner.batches).toEqual([]);
    await new Promise(setImmediate);
    await sink.pass();
    expect(inner.batches).toEqual([{ frames: [Buffer.from('a'), Buffer.alloc(0), Buffer.from('c')], first: 1, end: 3 }]);
  });

  it('passes at once past its limit, and waits for the chain', async () => {
    const inner = new RecordingSink('text');
    let release!: () => void;
    inner.answer = () => new Promise<void>((resolve) => (release = resolve));
    const sink = new BatchingSink(inner, 2);
    sink.frames(['a'], 1, 1);
    const wait = sink.frames(['b'], 2, 2);
    expect(wait).toBeInstanceOf(Promise);
    await new Promise(setImmediate);
    expect(inner.batches.map((b) => b.frames)).toEqual([['a', 'b']]);
    let done = false;
    void (wait as Promise<void>).then(() => (done = true));
    await new Promise(setImmediate);
    expect(done).toBe(false);
    release();
    await wait;
    expect(done).toBe(true);
  });

  it('a failure of the chain is thrown by every later call', async () => {
    const inner = new RecordingSink('text');
    inner.answer = () => Promise.reject(new Error('disk full'));
    const sink = new BatchingSink(inner, 1);
    await expect(sink.frames(['a'], 1, 1)).rejects.toThrow('disk full');
    expect(() => sink.frames(['b'], 2, 2)).toThrow('disk full');
    await expect(sink.pass()).rejects.toThrow('disk full');
  });
});

describe('lengthPrefixed', () => {
  it('puts a big-endian length before each frame, and leaves out those too long for the prefix', () => {
    const { data, count, tooLong } = lengthPrefixed(['ab', Buffer.alloc(300, 1), 'é'], 1);
    expect(count).toBe(2);
    expect(tooLong).toEqual([1]);
    expect([...data]).toEqual([2, 0x61, 0x62, 2, 0xc3, 0xa9]);
    expect([...lengthPrefixed(['x'], 4).data]).toEqual([0, 0, 0, 1, 0x78]);
    expect([...lengthPrefixed(['x'], 8).data]).toEqual([0, 0, 0, 0, 0, 0, 0, 1, 0x78]);
  });
});
