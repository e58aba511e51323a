"""The durable queue: JobStore on SQLite and the JobRunner that drains it."""
