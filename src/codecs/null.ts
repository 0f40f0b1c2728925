import { defineCodec } from '../core/plugin.js';

export default defineCodec({
  summary: "The frame's text, unchanged (alias raw).",
  description:
    'Decoding makes the message the text of the frame as it is. Encoding writes a string message as it is and any other value as JSON. With Null on both sides and no filters, lines pass through as bytes, untouched.',
  examples: ['message-passing --decoder Null --encoder Null < app.log', 'message-passing --decoder raw < app.log'],
  options: {},
  create: () => ({
    form: 'text',
    identity: true,
    decode: (frame) => frame,
    encode: (message: unknown) => (typeof message === 'string' ? message : JSON.stringify(message)),
  }),
});
