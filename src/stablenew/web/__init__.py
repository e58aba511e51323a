"""The web UI's static files (HTML, CSS, JavaScript), served by `stablenew.api` at `/`.

No Python lives here and nothing is built at install: the browser loads these files as they
are, and they talk to the public HTTP API and its event stream only (see js/api.js and
js/stream.js). No file here is fetched from another origin, and none uses `innerHTML` with
data: user text (prompts, file names, error messages) is always set as text.

index.html      the page: compose, running and queue, gallery and history, backend and log
login.html      the login page (a bind off loopback needs the API token once)
app.css         light and dark (following the system), desktop and phone layouts
js/main.js      start-up, views, keyboard, the wiring between the parts below
js/api.js       fetch wrapper: JSON in and out, the API's error messages
js/stream.js    the event stream, resumed after a dropped connection with Last-Event-ID
js/dom.js       building elements (text only), formatting
js/compose.js   the compose form <-> a JobSpec; validation as the user types; uploads
js/queue.js     running job, queue (drag-and-drop reorder, bulk cancel, pause with reason)
js/gallery.js   history grid, filters, lightbox, failure details
js/backend.js   backend state, pool, models, output tail; the lifecycle log
"""
