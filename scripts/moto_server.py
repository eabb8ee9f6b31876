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
check reads the retention period alone here.

Two costs grew with the square of a backlog's size, so that a test draining 20,000 messages
ran for minutes: each send counted the queue's messages three times (for an attribute dict
from which it reads one flag), and each delete asked every queued message for every receipt
handle it ever had. Here a send leaves the counts it never reads at 0, and a delete finds its
message through an index of receipt handles. A FIFO send, too, compared its deduplication id
with every queued message's; here it looks up the last message sent with that id.

moto lets two receives at once take messages of one FIFO group (see
_receive_message_atomically); here FIFO receives claim one at a time. Nothing else changes.
"""

import functools
import sys
import threading
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
Message = sqs_models.Message

# Every receipt handle moto has issued and not yet seen deleted, to the message it was issued
# for: moto finds a handle's message by asking every message of the queue for its handles.
_message_of_handle = {}
_mark_received = Message.mark_received


def _mark_received_indexed(message, visibility_timeout=None):
    _mark_received(message, visibility_timeout)
    _message_of_handle[message.receipt_handle] = message


def _delete_message_indexed(queue, receipt_handle):
    """moto's Queue.delete_message, under the lock sends take, finding the message by index."""
    with queue._messages_lock:
        if receipt_handle in queue.deleted_messages:
            return  # moto deletes a message twice without complaint
        message = _message_of_handle.get(receipt_handle)
        try:
            # list.index compares by identity first, and moto's models have no other equality.
            position = -1 if message is None else queue._messages.index(message)
        except ValueError:
            position = -1
        if position < 0:
            raise sqs_models.ReceiptHandleIsInvalid()
        queue.pending_messages.discard(message)
        handles = message.all_receipt_handles
        queue.deleted_messages.update(handles)
        for handle in handles:
            _message_of_handle.pop(handle, None)
        # A new list, as moto builds: a receive iterating the old one is not disturbed.
        queue._messages = queue._messages[:position] + queue._messages[position + 1 :]


Message.mark_received = _mark_received_indexed
Queue.delete_message = _delete_message_indexed

_add_message = Queue.add_message


def _add_message_deduplicated_by_index(queue, message):
    """moto's Queue.add_message, finding a FIFO duplicate through an index.

    moto drops a message when one with its deduplication id, sent within the window, is still
    queued; it looks through every queued message. The last accepted message of an id is the
    only one that can be within the window (an earlier one within it would have blocked it),
    so the index keeps that one. Queues with Lambda event sources keep moto's own code.
    """
    content_based = str(queue.content_based_deduplication).lower() == "true"
    if not queue.fifo_queue or queue.lambda_event_source_mappings:
        return _add_message(queue, message)
    if content_based or message.deduplication_id:
        last_of_id = queue.__dict__.setdefault("_last_of_deduplication_id", {})
        last = last_of_id.get(message.deduplication_id)
        if last is not None and last in queue._messages:
            age = (message.sent_timestamp - last.sent_timestamp) / 1000
            if age < sqs_models.DEDUPLICATION_TIME_IN_SECONDS:
                return
        last_of_id[message.deduplication_id] = message
    with queue._messages_lock:
        queue._messages.append(message)
        queue._messages_lock.notify_all()


Queue.add_message = _add_message_deduplicated_by_index

_receive_message = sqs_models.SQSBackend.receive_message


def _receive_message_atomically(
    backend,
    queue_name,
    count,
    wait_seconds_timeout,
    visibility_timeout,
    message_attribute_names=None,
):
    """moto's receive, with a FIFO queue's scan-and-claim under a lock of the queue.

    moto notes which groups have messages in flight when a receive begins, then claims messages
    one by one; two receives at once both find a group free and each take some of it, which a
    FIFO queue on AWS never allows. Here one FIFO receive at a time scans (as a short poll),
    and a long poll waits between scans without the lock.
    """
    queue = backend.get_queue(queue_name)
    if not queue.fifo_queue:
        return _receive_message(
            backend,
            queue_name,
            count,
            wait_seconds_timeout,
            visibility_timeout,
            message_attribute_names,
        )
    lock = queue.__dict__.setdefault("_receive_lock", threading.Lock())
    deadline = time.time() + (wait_seconds_timeout or 0)
    while True:
        with lock:
            received = _receive_message(
                backend, queue_name, count, 0, visibility_timeout, message_attribute_names
            )
        left = deadline - time.time()
        if received or left <= 0:
            return received
        if queue.messages:
            time.sleep(min(0.02, left))  # visible, but their groups are in flight
        else:
            queue.wait_for_messages(min(1.0, left))  # woken by the next send


sqs_models.SQSBackend.receive_message = _receive_message_atomically
# Sending a message reads one queue attribute (ContentBasedDeduplication) from the dictionary
# of all of them, counts included, three times: while a thread sends, the counts (which a send
# never uses) read 0.
_sending = threading.local()


def _counts_unused(method):
    @functools.wraps(method)
    def sending(*args, **kwargs):
        depth = getattr(_sending, "depth", 0)
        _sending.depth = depth + 1
        try:
            return method(*args, **kwargs)
        finally:
            _sending.depth = depth

    return sending


def _count(scan):
    return property(lambda queue: 0 if getattr(_sending, "depth", 0) else scan(queue))


Queue.messages = property(_visible)
Queue.approximate_number_of_messages = _count(lambda queue: len(_visible(queue)))
Queue.approximate_number_of_messages_not_visible = _count(_not_visible)
Queue.approximate_number_of_messages_delayed = _count(_delayed)
for _send in ("send_message", "send_message_batch"):
    setattr(sqs_models.SQSBackend, _send, _counts_unused(getattr(sqs_models.SQSBackend, _send)))

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
