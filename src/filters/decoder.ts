import { defineFilter } from '../core/plugin.js';

export default defineFilter({
  summary: 'Decode string messages mid-chain with a codec (default JSON).',
  description: 'Useful after --decoder Null, or on a field extracted by an earlier filter. A message that is not a string, or does not decode, goes to the error output.',
  examples: ['message-passing --decoder Null --filter ./pick-lines.js --filter Decoder'],
  options: { codec: { type: 'string', default: 'JSON', description: 'Codec to decode with (see --list).' } },
  create: async (options, context) => {
    const codec = await context.codec(options.codec);
    return {
      filter: (message) => {
        if (typeof message !== 'string') throw new Error(`Decoder expects a string message, got ${typeof message}`);
        return codec.decode(message);
      },
    };
  },
});
