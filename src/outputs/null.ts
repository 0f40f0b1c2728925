import { defineOutput } from '../core/plugin.js';

export default defineOutput({
  summary: 'Discard every message (counted by --stats).',
  examples: ['message-passing --input ZeroMQ --input_options \'{socket_bind: "tcp://*:5552"}\' --output Null --stats 5'],
  options: {},
  create: () => ({ passThrough: 'lines', write: () => undefined, writeLines: () => undefined, close: async () => undefined }),
});
