// Check one JSON document (stdin) against one of @corti/sdk's own schemas, strictly.
// Usage: node check_schema.mjs SchemaName < document.json ; exit 1 with the errors if it fails.
import { readFileSync } from "node:fs";
import * as schemas from "@corti/sdk/serialization";

const name = process.argv[2];
const checked = schemas[name].parse(JSON.parse(readFileSync(0, "utf8")), {
  unrecognizedObjectKeys: "passthrough",
  allowUnrecognizedEnumValues: false,
});
if (!checked.ok) {
  console.error(JSON.stringify(checked.errors));
  process.exit(1);
}
