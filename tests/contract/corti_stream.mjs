// Corti's real-time stream (`/streams`) through Corti's own SDK (@corti/sdk), against a Corti
// emulator. Usage: node corti_stream.mjs BASE_URL TENANT CLIENT_ID CLIENT_SECRET WAV_FILE MODE
// (MODE: transcription | facts). With the SDK: create an interaction, `client.stream.connect`,
// send the configuration, wait for CONFIG_ACCEPTED, send the WAV's PCM in 250 ms binary frames
// with one `flush` halfway, `end`, wait for ENDED and the server's close. Every server message
// must fit the SDK's own type for it (strict, see corti_schema.mjs) and be delivered by the SDK.
// Prints one JSON object of what arrived; any failure exits 1 with the reason on stderr.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { CortiClient } from "@corti/sdk";
import { assertFits, assertStreamMessageFits } from "./corti_schema.mjs";

const CHUNK = 8000; // bytes: 250 ms of 16 kHz mono pcm16
const WAIT_MS = 10000; // for each answer the stream owes

/** The PCM bytes of a WAV file's `data` chunk. */
function wavPcm(file) {
  const wav = readFileSync(file);
  if (wav.toString("ascii", 0, 4) !== "RIFF" || wav.toString("ascii", 8, 12) !== "WAVE") {
    throw new Error(`${file} is not a WAV file`);
  }
  for (let at = 12; at + 8 <= wav.length; ) {
    const size = wav.readUInt32LE(at + 4);
    if (wav.toString("ascii", at, at + 4) === "data") return wav.subarray(at + 8, at + 8 + size);
    at += 8 + size + (size & 1);
  }
  throw new Error(`${file} has no data chunk`);
}

const [base, tenant, clientId, clientSecret, wav, mode] = process.argv.slice(2);
const client = new CortiClient({
  tenantName: tenant,
  environment: {
    base: `${base}/v2`,
    wss: `${base.replace(/^http/, "ws")}/audio-bridge/v2`,
    login: `${base}/realms`,
    agents: base,
  },
  auth: { clientId, clientSecret },
});

// What the stream did, in order: the SDK's deliveries, the same messages as sent on the wire,
// the SDK's error events and the close. Waiters re-check on every event.
const delivered = [];
const wire = [];
const errors = [];
let closed = null;
const waiters = new Set();
function changed() {
  for (const waiter of waiters) waiter();
}

/** Resolves once `done()` holds; rejects on an SDK error event, an early close, or timeout. */
function until(what, done) {
  return new Promise((resolve, reject) => {
    const finish = (fn, value) => {
      waiters.delete(check);
      clearTimeout(timer);
      fn(value);
    };
    const check = () => {
      if (errors.length > 0) return finish(reject, new Error(`SDK error event: ${errors[0]}`));
      if (done()) return finish(resolve);
      if (closed !== null) {
        finish(reject, new Error(`stream closed (${JSON.stringify(closed)}) before ${what}`));
      }
    };
    const timer = setTimeout(() => finish(reject, new Error(`no ${what} in ${WAIT_MS} ms`)), WAIT_MS);
    waiters.add(check);
    check();
  });
}
const arrived = (type) => () => delivered.some((m) => m.type === type);

let step = "start";
try {
  step = "interaction";
  const { interactionId } = await client.interactions.create({
    encounter: { identifier: "contract-stream", status: "planned", type: "first_consultation" },
  });

  step = "connect";
  // No `configuration` here: the SDK then hands the socket over before it opens, so every
  // message (CONFIG_ACCEPTED too) reaches the handlers below; the config is sent explicitly.
  const socket = await client.stream.connect({ id: interactionId });
  socket.socket.addEventListener("message", (event) => {
    wire.push(JSON.parse(event.data));
  });
  socket.on("message", (message) => {
    delivered.push(message);
    changed();
  });
  socket.on("error", (error) => {
    errors.push(error?.message ?? String(error));
    changed();
  });
  socket.on("close", (event) => {
    closed ??= { code: event.code, reason: event.reason ?? "" };
    changed();
  });
  await socket.waitForOpen();

  step = "config";
  const config = {
    type: "config",
    configuration: {
      transcription: {
        primaryLanguage: "en",
        isDiarization: false,
        isMultichannel: false,
        participants: [{ channel: 0, role: "multiple" }],
      },
      mode: { type: mode, outputLocale: "en" },
    },
  };
  assertFits("StreamConfigMessage", config); // ours, so that a refusal is the emulator's doing
  socket.sendConfiguration(config);
  await until("a CONFIG_* answer", () => delivered.some((m) => m.type?.startsWith?.("CONFIG_")));
  if (delivered[0].type !== "CONFIG_ACCEPTED") {
    throw new Error(`configuration answered ${JSON.stringify(wire[0])}`);
  }

  step = "audio";
  const pcm = wavPcm(wav);
  const half = Math.ceil(pcm.length / CHUNK / 2) * CHUNK;
  let chunks = 0;
  let flushedAt = null;
  for (let at = 0; at < pcm.length; at += CHUNK) {
    socket.sendAudio(pcm.subarray(at, Math.min(at + CHUNK, pcm.length)));
    chunks += 1;
    if (at + CHUNK === half) {
      step = "flush";
      socket.sendFlush({ type: "flush" });
      await until("flushed", arrived("flushed"));
      flushedAt = delivered.length;
      step = "audio";
    }
  }

  step = "end";
  socket.sendEnd({ type: "end" });
  await until("ENDED", arrived("ENDED"));
  step = "close";
  await until("the server's close", () => closed !== null);

  step = "check";
  if (wire.length !== delivered.length) {
    throw new Error(`the SDK delivered ${delivered.length} of ${wire.length} messages`);
  }
  wire.forEach((message, i) => {
    if (delivered[i].type !== message.type) {
      throw new Error(`message ${i}: the SDK delivered ${delivered[i].type}, the wire had ${message.type}`);
    }
    assertStreamMessageFits(message);
  });
  console.log(
    JSON.stringify({
      interactionId,
      types: wire.map((m) => m.type),
      flushedAt,
      transcripts: wire.filter((m) => m.type === "transcript"),
      facts: wire.filter((m) => m.type === "facts"),
      close: closed,
      audio: { bytes: pcm.length, chunks, sha256: createHash("sha256").update(pcm).digest("hex") },
    }),
  );
  process.exit(0);
} catch (err) {
  console.error(`step ${step} failed: ${err?.constructor?.name}: ${err?.message}`);
  if (wire.length > 0) console.error(`messages so far: ${JSON.stringify(wire).slice(0, 2000)}`);
  process.exit(1);
}
