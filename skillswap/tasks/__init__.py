"""Background work: the TaskIQ broker, the outbox and its relay, tasks, the scheduler's jobs.

outbox.py       the outbox's statements: enqueue in the caller's transaction, claim, finish,
                retry with backoff, dead-letter
broker.py       the broker factory (taskiq-redis streams, or TaskIQ's in-memory broker)
definitions.py  the tasks, thin wrappers running an outbox row through its kind's handler
relay.py        publishes due rows, woken by LISTEN/NOTIFY, polling as a fallback
jobs.py         the scheduler's periodic jobs
scheduler.py    runs them in one process per deployment (an advisory lock, or a file lock)
worker.py       a worker process's loop; relay + worker + scheduler inside the embedded serve

Never imports tornado or the REST layer; entry points (the CLI, `serve`) give it a `Deps`.
"""
