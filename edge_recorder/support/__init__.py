"""Cross-cutting helpers every layer may use: logging, credentials, readable check results."""
