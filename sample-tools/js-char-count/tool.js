// `js-char-count` (risk tier: read): counts the characters of a text.
//
// A sample tool written in JavaScript and built with componentize-js, so the
// tests prove that a component from that toolchain loads and runs in
// agenthost. componentize-js keeps its `fetch` (and so a wasi:http import)
// unless told otherwise; the optional `url` exercises it, and whatever the
// host answers (no egress granted, a refused address) is reported in the
// output instead of failing the count.

import { log } from 'agenthost:platform/log@0.1.0';

const SCHEMA = {
  type: 'object',
  properties: {
    text: { type: 'string' },
    url: { type: 'string' },
  },
  required: ['text'],
  additionalProperties: false,
};

// World-level exports are the module's named exports (kebab-case WIT names
// become camelCase; these two are single words).
export function describe() {
  return {
    name: 'js-char-count',
    version: '0.1.0',
    description: 'Counts the Unicode code points of a text; optionally tries to fetch a URL.',
    inputSchema: JSON.stringify(SCHEMA),
    riskTier: 'read',
  };
}

// `invoke` is sync in WIT; componentize-js runs the event loop until the
// returned promise settles, which is what lets it `await fetch`. A return is
// the `ok` case of the result; a throw is the `err` case, carrying the variant.
export async function invoke(input) {
  let args;
  try {
    args = JSON.parse(input);
  } catch (e) {
    throw { tag: 'invalid-input', val: `the input is not JSON: ${e.message}` };
  }
  if (typeof args?.text !== 'string') {
    throw { tag: 'invalid-input', val: 'expected {"text": string}' };
  }

  // Spreading a string walks code points, not UTF-16 units, so an emoji counts once.
  const output = { chars: [...args.text].length };
  if (typeof args.url === 'string') {
    try {
      const response = await fetch(args.url);
      output.fetch = `ok ${response.status}`;
    } catch (e) {
      output.fetch = String(e?.message ?? e);
    }
  }

  log('info', 'counted characters', [['chars', String(output.chars)]]);
  return JSON.stringify(output);
}
