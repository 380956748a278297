"""The admin listener: /metrics, the admin API under /admin/, the dashboard at /.

Runs in the supervisor of `wardgate run` (never in a worker: workers do not import a web
framework). `view.AdminView` is what the API reads: the supervisor's config, its workers and
the aggregated metrics. Features add endpoints at one place: `app.ADMIN_ROUTERS`.
"""
