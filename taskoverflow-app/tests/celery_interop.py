#!/usr/bin/env python3
"""Python Celery on the same queue and result tables as TaskOverflow, for tests/process.rs.

The Celery app has one task, `ical`, with TaskOverflow's signature (one argument, the list
of todos as the API returns them) and a result of the same kind (the calendar's text). It is
configured from the environment as a Python deployment next to the Rust one would be:

    CELERY_BROKER_URL       redis://host:port (shared with the Rust side)
    CELERY_KEY_PREFIX       kombu's global key prefix (the Rust side's key_prefix)
    CELERY_RESULT_BACKEND   db+postgresql://... (Celery's database backend)
    CELERY_RESULT_SCHEMA    database_table_schemas for the task and group tables
    CELERY_DEFAULT_QUEUE    the queue

    python celery_interop.py worker          # runs jobs until killed
    python celery_interop.py send TODOS_JSON # sends one job, waits, prints its result as JSON
"""

import json
import os
import sys

from celery import Celery

app = Celery("taskoverflow")
app.conf.broker_url = os.environ["CELERY_BROKER_URL"]
app.conf.broker_transport_options = {"global_keyprefix": os.environ.get("CELERY_KEY_PREFIX", "")}
app.conf.result_backend = os.environ["CELERY_RESULT_BACKEND"]
schema = os.environ.get("CELERY_RESULT_SCHEMA")
if schema:
    app.conf.database_table_schemas = {"task": schema, "group": schema}
app.conf.task_default_queue = os.environ.get("CELERY_DEFAULT_QUEUE", "ical")
app.conf.task_track_started = True
app.conf.worker_hijack_root_logger = False


@app.task(name="ical")
def ical(todos):
    events = "".join(
        f"BEGIN:VEVENT\r\nUID:{todo['id']}\r\nSUMMARY:{todo['title']}\r\nEND:VEVENT\r\n"
        for todo in todos
    )
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Python Celery//interop//\r\n"
        f"{events}END:VCALENDAR\r\n"
    )


def main():
    if sys.argv[1:2] == ["worker"]:
        app.worker_main(["worker", "--pool", "solo", "--concurrency", "1", "--loglevel", "WARNING",
                         "--without-gossip", "--without-mingle", "--without-heartbeat"])
    elif sys.argv[1:2] == ["send"]:
        result = app.send_task("ical", args=[json.loads(sys.argv[2])])
        print(json.dumps({"task_id": result.id, "result": result.get(timeout=30)}))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
