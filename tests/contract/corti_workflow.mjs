// The Corti workflow through Corti's own SDK (@corti/sdk), against a Corti emulator.
// Usage: node corti_workflow.mjs BASE_URL TENANT CLIENT_ID CLIENT_SECRET WAV_FILE
// Prints one JSON object of what each step answered. Every JSON answer is also checked against
// the SDK's own schema for it (`@corti/sdk/serialization`, strict: the SDK itself skips this),
// so a field the emulator leaves out or misnames fails the step. Any failure exits 1.
import { readFileSync } from "node:fs";
import { CortiClient } from "@corti/sdk";
import * as schemas from "@corti/sdk/serialization";

// The JSON body of every answer, as the emulator sent it (the SDK parses it unchecked).
const answers = [];
async function recordingFetch(url, init) {
  const response = await fetch(url, init);
  if ((response.headers.get("content-type") || "").includes("json")) {
    answers.push(await response.clone().json());
  }
  return response;
}

const [base, tenant, clientId, clientSecret, wav] = process.argv.slice(2);
const client = new CortiClient({
  tenantName: tenant,
  environment: {
    base: `${base}/v2`,
    wss: `${base.replace(/^http/, "ws")}/audio-bridge/v2`,
    login: `${base}/realms`,
    agents: base,
  },
  auth: { clientId, clientSecret },
  fetch: recordingFetch,
});

const out = {};
let step = "start";
async function run(name, fn, schema) {
  step = name;
  out[name] = await fn();
  if (schema !== undefined) {
    const body = answers[answers.length - 1];
    const checked = schemas[schema].parse(body, {
      unrecognizedObjectKeys: "passthrough",
      allowUnrecognizedEnumValues: false,
      breadcrumbsPrefix: [schema],
    });
    if (!checked.ok) {
      throw new Error(`answer does not fit ${schema}: ${JSON.stringify(checked.errors)}`);
    }
  }
  return out[name];
}

try {
  const created = await run(
    "interaction",
    () =>
      client.interactions.create({
        encounter: { identifier: "contract-1", status: "planned", type: "first_consultation" },
      }),
    "InteractionsCreateResponse",
  );
  const id = created.interactionId;
  await run("interactionGet", () => client.interactions.get(id), "InteractionsGetResponse");
  await run(
    "interactionList",
    async () => (await client.interactions.list()).data.map((i) => i.id),
    "InteractionsListResponse",
  );
  const rec = await run(
    "upload",
    () => client.recordings.upload(readFileSync(wav), id),
    "RecordingsCreateResponse",
  );
  await run("recordingList", () => client.recordings.list(id), "RecordingsListResponse");
  await run("recordingGet", async () => {
    const body = await client.recordings.get(id, rec.recordingId);
    return { bytes: (await body.arrayBuffer()).byteLength };
  });
  const transcript = await run(
    "transcript",
    () => client.transcripts.create(id, { recordingId: rec.recordingId, primaryLanguage: "en" }),
    "TranscriptsResponse",
  );
  await run("transcriptGet", () => client.transcripts.get(id, transcript.id), "TranscriptsResponse");
  await run("transcriptList", () => client.transcripts.list(id), "TranscriptsListResponse");
  const templates = await run("templates", () => client.templates.list(), "TemplatesListResponse");
  const doc = await run(
    "document",
    () =>
      client.documents.create(id, {
        context: [{ type: "transcript", data: { text: "contract test" } }],
        templateKey: templates.data[0].key,
        outputLanguage: "en",
      }),
    "DocumentsGetResponse",
  );
  await run("documentGet", () => client.documents.get(id, doc.id), "DocumentsGetResponse");
  await run("documentList", () => client.documents.list(id), "DocumentsListResponse");
  console.log(JSON.stringify(out));
} catch (err) {
  console.error(`step ${step} failed: ${err?.constructor?.name}: ${err?.message}`);
  if (err?.body !== undefined) console.error(JSON.stringify(err.body).slice(0, 2000));
  process.exit(1);
}
