"""The HTTP API of `stablenew serve` (FastAPI): calls the controllers in `stablenew.app` only.

app.py        the app factory: routers, error handler, guard, docs assets
security.py   token, Host check (DNS rebinding), JSON-only state changes, body bound
problems.py   StableNew's error tree as HTTP answers
sse.py        the event stream: the store's log, replayable by seq, fanned out by one hub
a1111.py      A1111 request bodies as JobSpecs (both doors)
models.py     bodies and answers (the OpenAPI schemas)
routes/       one module per resource: jobs, outputs, queue, backend, events, a1111,
              agent_scheduler, site (docs, login, metrics)
"""
