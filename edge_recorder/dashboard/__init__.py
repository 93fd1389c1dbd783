"""`edge-recorder fleet serve`: the fleet dashboard, a web service beside the MQTT broker.

It is not part of the device: it subscribes to the topics every device publishes
(`edge_recorder.fleet.topics`) and serves a problems-first fleet page, device pages with 24 h
charts from a SQLite history, live updates over server-sent events, OpenMetrics for
Prometheus, and the `identify`/`spool_retry` commands for operators. Installed with the
`dashboard` extra. Data flow, one module per job:

    ingest (MQTT thread: size cap, per-device flood bucket) -> validate (JSON + schema)
      -> fleetstate (presence, problems, ranking; pure) -> history (SQLite, batched)
      -> live (SSE fan-out) / metrics (OpenMetrics) -> web (aiohttp routes, auth, audit)
"""
