"""The operators' console: server-rendered pages (Jinja2 templates, inline SVG charts, one local
stylesheet; no JavaScript build, nothing from a CDN). Every page and form calls `require_operator`:
an operator logs in with the TLS client certificate the hub lists in `operator_certs`."""
