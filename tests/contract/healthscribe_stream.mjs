// StartMedicalScribeStream through AWS's own SDK (@aws-sdk/client-transcribe-streaming),
// against the HealthScribe emulator, as the SDK sends it (HTTP/2, SigV4, signed event stream).
// Usage: NODE_EXTRA_CA_CERTS=CA node healthscribe_stream.mjs ENDPOINT ACCESS_KEY SECRET WAV
// Prints {"sessionId", "segments", "bytes"}; any error exits 1.
import { readFileSync } from "node:fs";
import {
  StartMedicalScribeStreamCommand,
  TranscribeStreamingClient,
} from "@aws-sdk/client-transcribe-streaming";

const [endpoint, accessKeyId, secretAccessKey, wav] = process.argv.slice(2);
const pcm = readFileSync(wav).subarray(44); // the WAV header is 44 bytes: send the samples

async function* events() {
  yield {
    ConfigurationEvent: {
      ResourceAccessRoleArn: "arn:aws:iam::123456789012:role/edge-recorder-contract",
      PostStreamAnalyticsSettings: {
        ClinicalNoteGenerationSettings: {
          OutputBucketName: "edge-recorder-contract",
          NoteTemplate: "HISTORY_AND_PHYSICAL",
        },
      },
    },
  };
  for (let at = 0; at < pcm.length; at += 3200) {
    yield { AudioEvent: { AudioChunk: pcm.subarray(at, at + 3200) } };
  }
  yield { SessionControlEvent: { Type: "END_OF_SESSION" } };
}

try {
  const client = new TranscribeStreamingClient({
    region: "us-east-1",
    endpoint,
    credentials: { accessKeyId, secretAccessKey },
  });
  const answer = await client.send(
    new StartMedicalScribeStreamCommand({
      LanguageCode: "en-US",
      MediaSampleRateHertz: 16000,
      MediaEncoding: "pcm",
      InputStream: events(),
    }),
  );
  let segments = 0;
  for await (const event of answer.ResultStream) {
    if (event.TranscriptEvent?.TranscriptSegment) segments += 1;
  }
  console.log(JSON.stringify({ sessionId: answer.SessionId, segments, bytes: pcm.length }));
  client.destroy();
} catch (err) {
  console.error(`${err?.name}: ${err?.message}`);
  process.exit(1);
}
