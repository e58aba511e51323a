"""The HTTP API of `stablenew serve` (FastAPI): calls the controllers in `stablenew.app` only.

app.py        the app factory: routers, error handler, guard, docs assets, the web UI's files
security.py   token, Host check (DNS rebinding), JSON-only state changes, body bound
headers.py    the Content-Security-Policy (and its companions) on every answer
problems.py   StableNew's error tree as HTTP answers
sse.py        the event stream: the store's log, replayable by seq, fanned out by one hub
a1111.py      A1111 request bodies as JobSpecs (both doors)
models.py     bodies and answers (the OpenAPI schemas)
routes/       one module per resource: jobs, outputs, compose (defaults, input images, PNG, preset),
              queue, backend, events, a1111, agent_scheduler, site (docs, metrics),
              web (the web UI at /, its login page, the session)
"""
