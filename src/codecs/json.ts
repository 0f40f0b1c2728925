import { isVerbatimJson } from '../io/json-verbatim.js';
import { defineCodec } from '../core/plugin.js';

export default defineCodec({
  summary: 'One JSON value per frame (the wire format of Perl Message::Passing).',
  description: 'Decoding parses the frame as JSON; a frame that is not JSON goes to the error output. Encoding writes compact JSON on one line.',
  examples: ['message-passing --decoder JSON --encoder JSON < events.ndjson'],
  options: {},
  // Lines already in the form JSON.stringify writes pass through untouched when nothing else looks inside.
  create: () => ({ form: 'text', decode: JSON.parse as (frame: string | Buffer) => unknown, encode: JSON.stringify, verbatim: isVerbatimJson }),
});
