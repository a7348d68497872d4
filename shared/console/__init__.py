"""The operations console: one static page and its script, and the JSON it reads.

The page and its assets are files in `static/`, read at request time and served with a
strict Content-Security-Policy; the page holds no data. The script asks for a function key
and reads the app's own JSON endpoints (`GET /api/console/inventory` for the sync jobs,
`GET /api/sync/{job}`, `GET /api/health`, the loads API `GET /api/bulk-loads[/{id}]`, and
the batch and event endpoints when the app has them).
"""
