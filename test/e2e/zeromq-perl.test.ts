// Interoperability with Perl's Message::Passing::ZeroMQ (`message-pass`), in
// both directions and both socket pairs. Perl's JSON encoder does not keep key
// order, so messages are compared as values, not as text.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { freePort, lines, records, stop, tracked, until, type Running, type StartOptions } from './helpers.js';

const perlProblem = (() => {
  if (spawnSync('sh', ['-c', 'command -v message-pass'], { encoding: 'utf8' }).status !== 0) return 'message-pass is not on PATH';
  const modules = spawnSync('perl', ['-MMessage::Passing::Input::ZeroMQ', '-MMessage::Passing::Output::ZeroMQ', '-e1'], { encoding: 'utf8' });
  if (modules.status !== 0) return 'Perl module Message::Passing::ZeroMQ is missing (Debian: libmessage-passing-zeromq-perl)';
  return undefined;
})();
if (perlProblem) console.warn(`ZeroMQ interop tests with Perl skipped: ${perlProblem}`);

const endpoint = (port: number) => `tcp://127.0.0.1:${port}`;
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const ndjson = (values: readonly unknown[]) => values.map((v) => JSON.stringify(v) + '\n').join('');

const spawned = tracked();
const perl = (args: readonly string[], options?: StartOptions) => spawned(args, { ...options, command: 'message-pass' });
// Perl starts slowly: its waits are longer.
const PERL_WAIT = 15_000;

describe.skipIf(perlProblem !== undefined)(`ZeroMQ with Perl's message-pass${perlProblem ? ` (skipped: ${perlProblem})` : ''}`, () => {
  it('Perl PUB (connect) -> our SUB (bind)', async () => {
    const port = await freePort();
    const ours = spawned(['--input', 'ZeroMQ', '--input_options', JSON.stringify({ socket_bind: endpoint(port) })]);
    const theirs = perl(['--input', 'STDIN', '--output', 'ZeroMQ', '--output_options', JSON.stringify({ connect: endpoint(port) })], { timeout: 30_000 });
    // Perl's PUB sleeps 0.2 s for its subscribers and drops what is queued at exit: keep it running and sending until a message is through.
    let n = 0;
    const sending = setInterval(() => theirs.child.stdin!.write(ndjson([{ from: 'perl', socket: 'PUB', n: ++n }])), 100);
    try {
      await until(() => ours.stdout.includes('perl'), 'a message from Perl', PERL_WAIT);
    } finally {
      clearInterval(sending);
    }
    await stop(theirs);
    const finished = await stop(ours);
    expect(finished.code, finished.stderr).toBe(0);
    const received = records(finished.stdout);
    expect(received.length).toBeGreaterThan(0);
    for (const message of received) expect(message).toEqual({ from: 'perl', socket: 'PUB', n: message.n });
    // One connection keeps order, and nothing arrives twice.
    const numbers = received.map((m) => Number(m.n));
    expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
    expect(new Set(numbers).size).toBe(numbers.length);
  });

  it('Perl PUSH (connect) -> our PULL (bind): every message', async () => {
    const port = await freePort();
    const ours = spawned(['--input', 'ZeroMQ', '--input_options', JSON.stringify({ socket_bind: endpoint(port), socket_type: 'PULL' })]);
    const theirs = perl(['--input', 'STDIN', '--output', 'ZeroMQ', '--output_options', JSON.stringify({ connect: endpoint(port), socket_type: 'PUSH' })], { timeout: 30_000 });
    const messages = range(1, 50).map((n) => ({ from: 'perl', socket: 'PUSH', n }));
    // Perl's STDIN input reads one line per readable event (the rest waits in its buffer until EOF, when it exits
    // with linger 0 and may drop what it holds): so one line at a time, each once the one before is through.
    for (const [i, message] of messages.entries()) {
      theirs.child.stdin!.write(ndjson([message]));
      await until(() => records(ours.stdout).length > i, `message ${i + 1} from Perl`, PERL_WAIT);
    }
    theirs.child.stdin!.end();
    await theirs.done;
    const finished = await stop(ours);
    expect(finished.code, finished.stderr).toBe(0);
    expect(records(finished.stdout)).toEqual(messages);
  });

  it('our PUSH (connect) -> Perl PULL (bind): every message', async () => {
    const port = await freePort();
    const theirs = perl(['--input', 'ZeroMQ', '--input_options', JSON.stringify({ socket_bind: endpoint(port), socket_type: 'PULL' }), '--output', 'STDOUT'], { timeout: 30_000 });
    const messages = range(1, 200).map((n) => ({ from: 'node', socket: 'PUSH', n }));
    // Perl takes a while to start; our PUSH waits for it (linger covers the end).
    const ours = spawned(['--output', 'ZeroMQ', '--output_options', JSON.stringify({ connect: endpoint(port), socket_type: 'PUSH', linger: 15_000 })], {
      input: ndjson(messages),
      timeout: 30_000,
    });
    const sent = await ours.done;
    expect(sent.code, sent.stderr).toBe(0);
    await until(() => records(theirs.stdout).length >= messages.length, 'every message at Perl', PERL_WAIT);
    await stop(theirs);
    expect(records(theirs.stdout)).toEqual(messages);
  });

  it('our PUB (connect) -> Perl SUB (bind): a one-liner waits for Perl to subscribe', async () => {
    const port = await freePort();
    const theirs = perl(['--input', 'ZeroMQ', '--input_options', JSON.stringify({ socket_bind: endpoint(port) }), '--output', 'STDOUT'], { timeout: 30_000 });
    const messages = range(1, 200).map((n) => ({ from: 'node', socket: 'PUB', n }));
    // subscribe_delay bounds the wait for Perl's subscription; Perl's start-up is slow on a busy machine.
    const sent = await spawned(['--output', 'ZeroMQ', '--output_options', JSON.stringify({ connect: endpoint(port), subscribe_delay: 15 })], {
      input: ndjson(messages),
      timeout: 30_000,
    }).done;
    expect(sent.code, sent.stderr).toBe(0);
    await until(() => records(theirs.stdout).length >= messages.length, 'every message at Perl', PERL_WAIT);
    await stop(theirs);
    expect(records(theirs.stdout)).toEqual(messages);
  });
});
