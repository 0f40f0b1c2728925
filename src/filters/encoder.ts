import { defineFilter } from '../core/plugin.js';

export default defineFilter({
  summary: 'Encode messages into strings mid-chain with a codec (default JSON).',
  description: 'The next filters (and a Null encoder) then see the encoded text.',
  examples: ['message-passing --filter Encoder --filter ./sign-line.js --encoder Null'],
  options: { codec: { type: 'string', default: 'JSON', description: 'Codec to encode with (see --list).' } },
  create: async (options, context) => {
    const codec = await context.codec(options.codec);
    return { filter: (message) => codec.encode(message) };
  },
});
