// Strict checks against @corti/sdk's own schemas (`@corti/sdk/serialization`), shared by the
// Corti contract scripts. The SDK itself parses what it receives with validation skipped, so
// these checks are what catch a field the emulator leaves out, misnames or mistypes. Unknown
// object keys pass (the SDK passes them through); unknown enum values do not.
import * as schemas from "@corti/sdk/serialization";

const STRICT = { unrecognizedObjectKeys: "passthrough", allowUnrecognizedEnumValues: false };

/** The errors of `document` against the named schema (`schemas.stream.X` for "stream.X"); [] when it fits. */
export function schemaErrors(name, document) {
  const schema = name.split(".").reduce((scope, key) => scope?.[key], schemas);
  if (schema === undefined || typeof schema.parse !== "function") {
    return [{ path: [], message: `@corti/sdk/serialization has no schema ${name}` }];
  }
  const checked = schema.parse(document, { ...STRICT, breadcrumbsPrefix: [name] });
  return checked.ok ? [] : checked.errors;
}

/** Throws when `document` does not fit the named schema, with every error in the message. */
export function assertFits(name, document) {
  const errors = schemaErrors(name, document);
  if (errors.length > 0) {
    throw new Error(`does not fit ${name}: ${JSON.stringify(errors)}: ${JSON.stringify(document)}`);
  }
}

// The SDK's type for each server message of the real-time stream (`/streams`), by its `type`.
const STREAM_MESSAGE_SCHEMAS = {
  transcript: "StreamTranscriptMessage",
  facts: "StreamFactsMessage",
  flushed: "StreamFlushedMessage",
  delta_usage: "StreamDeltaUsageMessage",
  usage: "StreamUsageMessage",
  ENDED: "StreamEndedMessage",
  error: "StreamErrorMessage",
};

/** Throws unless one `/streams` server message fits its own type and the SDK's socket union. */
export function assertStreamMessageFits(message) {
  const type = message?.type;
  const name = type?.startsWith?.("CONFIG_")
    ? "StreamConfigStatusMessage"
    : STREAM_MESSAGE_SCHEMAS[type];
  if (name === undefined) throw new Error(`no @corti/sdk stream type for ${JSON.stringify(type)}`);
  assertFits(name, message); // first: its errors name the fields, the union's list every variant
  assertFits("stream.StreamSocketResponse", message);
}
