"""Runs moto's SQS emulator for scripts/services.sh: with a lock it lacks, and faster.

moto deletes a message by building a new list of a queue's messages and putting it in place
of the old one, without the lock under which it appends sent messages: a batch sent while
another thread deletes is lost. Here deleting takes that lock.

moto reads the clock through a datetime round trip twice for every queued message each time it
lists a queue's visible messages, and it lists them (three times, to count them) for every
message it is sent: a queue of a few thousand messages makes each request take a second, and a
test of 8,000 messages would run for many minutes. Here the clock reads time.time() (the same
value), and a queue's messages and counts are computed with one clock reading per scan, which
gives what moto gives at that instant. moto also lists its own package directory on every
request to route it, and converts attribute names from CamelCase for every attribute it
reads, and checks each received message's retention by computing every queue attribute
(the counts too); the listing is read once, the conversions are remembered, and the retention
check reads the retention period alone here. Nothing else changes.
"""

import functools
import sys
import time

import moto.backends as backends
import moto.core.utils as utils
import moto.sqs.models as sqs_models
from moto.server import main

_unix_time = utils.unix_time


def unix_time(dt=None):
    """Seconds since the epoch of `dt`, or of now when no date is given (moto's meaning)."""
    return time.time() if dt is None else _unix_time(dt)


def unix_time_millis(dt=None):
    """unix_time in milliseconds (moto's meaning)."""
    return unix_time(dt) * 1000.0


camelcase_to_underscores = functools.lru_cache(maxsize=4096)(utils.camelcase_to_underscores)

for module in (utils, sqs_models):
    module.unix_time = unix_time
    module.unix_time_millis = unix_time_millis
    module.camelcase_to_underscores = camelcase_to_underscores


def _visible(queue):
    """moto's Queue.messages: visible and not delayed, at one instant."""
    now = time.time() * 1000.0
    return [m for m in queue._messages if now > m.visible_at and now >= m.delayed_until]


def _not_visible(queue):
    now = time.time() * 1000.0
    return sum(1 for m in queue._messages if now <= m.visible_at)


def _delayed(queue):
    now = time.time() * 1000.0
    return sum(1 for m in queue._messages if now < m.delayed_until)


Queue = sqs_models.Queue
_delete_message = Queue.delete_message


def _delete_message_locked(queue, receipt_handle):
    with queue._messages_lock:
        return _delete_message(queue, receipt_handle)


Queue.delete_message = _delete_message_locked
Queue.messages = property(_visible)
Queue.approximate_number_of_messages = property(lambda queue: len(_visible(queue)))
Queue.approximate_number_of_messages_not_visible = property(_not_visible)
Queue.approximate_number_of_messages_delayed = property(_delayed)

def _retained(backend, queue_name, message):
    """moto's retention check, reading the one attribute it needs instead of all of them."""
    queue = backend.get_queue(queue_name)
    retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
    return retain_until > time.time()


sqs_models.SQSBackend.is_message_valid_based_on_retention_period = _retained

_modules = tuple(backends.list_of_moto_modules())
backends.list_of_moto_modules = lambda: _modules

if __name__ == "__main__":
    sys.exit(main())
