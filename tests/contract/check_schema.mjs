// Check one JSON document (stdin) against one of @corti/sdk's own schemas, strictly.
// Usage: node check_schema.mjs SchemaName < document.json ; exit 1 with the errors if it fails.
import { readFileSync } from "node:fs";
import { schemaErrors } from "./corti_schema.mjs";

const errors = schemaErrors(process.argv[2], JSON.parse(readFileSync(0, "utf8")));
if (errors.length > 0) {
  console.error(JSON.stringify(errors));
  process.exit(1);
}
