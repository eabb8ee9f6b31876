"""Runs moto's SQS emulator for scripts/services.sh, with its clock read once per scan.

moto reads the clock through a datetime round trip twice for every queued message each time it
lists a queue's visible messages, and it lists them (three times, to count them) for every
message it is sent: a queue of a few thousand messages makes each request take a second, and a
test of 8,000 messages would run for many minutes. Here the clock reads time.time() (the same
value), and a queue's messages and counts are computed with one clock reading per scan, which
gives what moto gives at that instant. moto also lists its own package directory on every
request to route it, and converts attribute names from CamelCase for every attribute it
reads; the listing is read once and the conversions are remembered here. Nothing else
changes.
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
Queue.messages = property(_visible)
Queue.approximate_number_of_messages = property(lambda queue: len(_visible(queue)))
Queue.approximate_number_of_messages_not_visible = property(_not_visible)
Queue.approximate_number_of_messages_delayed = property(_delayed)

_modules = tuple(backends.list_of_moto_modules())
backends.list_of_moto_modules = lambda: _modules

if __name__ == "__main__":
    sys.exit(main())
