"""Reads bounded by size as well as by count: measure the rows first, load only those that will be returned.

Every read that returns messages or memory values goes through ``page`` (an
ordered queryset) or ``pick`` (ids in a chosen order): one query reads each
row's id and size (``Length`` of its text columns, computed by the database),
the rows are cut where their sizes pass ``SCS_MAX_READ_BYTES`` (always at
least one), and a second query loads only those. Sizes are UTF-8 bytes.
"""

from django.db.models import Func, IntegerField, TextField, Value
from django.db.models.functions import Cast, Coalesce

from realtime import conf

# The id, seq, sender, visibility, timestamps and JSON keys of one record: a fixed allowance per row.
ROW_OVERHEAD = 256


class OctetLength(Func):
    """The length of a text in bytes (``Length`` counts characters)."""

    function = "OCTET_LENGTH"
    output_field = IntegerField()

    def as_sqlite(self, compiler, connection, **extra):
        # SQLite's octet_length() is 3.43+; a text cast to BLOB keeps its UTF-8 bytes.
        return self.as_sql(compiler, connection, template="LENGTH(CAST(%(expressions)s AS BLOB))", **extra)


def text_size(*fields):
    """A database expression: the UTF-8 bytes of ``fields`` (text or JSON columns) plus ``ROW_OVERHEAD``."""
    total = Value(ROW_OVERHEAD, output_field=IntegerField())
    for field in fields:
        total = total + Coalesce(OctetLength(Cast(field, TextField())), Value(0, output_field=IntegerField()))
    return total


MESSAGE_SIZE = ("content", "metadata")
SIZE_CHUNK = 16  # rows measured per database fetch while a page fills


def budget():
    return conf.get("SCS_MAX_READ_BYTES")


def cut(sizes, limit, max_bytes=None):
    """How many of ``sizes`` (in order) fit in ``limit`` rows and ``max_bytes``; at least one when any."""
    max_bytes = budget() if max_bytes is None else max_bytes
    total = taken = 0
    for size in sizes[:limit]:
        if taken and total + size > max_bytes:
            break
        total += size
        taken += 1
    return taken


def page(queryset, limit, *, offset=0, size_of=MESSAGE_SIZE, max_bytes=None):
    """Up to ``limit`` rows of ``queryset`` (in its order) from ``offset`` that fit in the read budget.

    Returns ``(rows, has_more)``; ``has_more`` is true when more rows follow,
    whether the count or the budget stopped the page.
    """
    max_bytes = budget() if max_bytes is None else max_bytes
    sized = queryset.annotate(read_size=text_size(*size_of)).values_list("pk", "read_size")[offset : offset + limit + 1]
    ids, total, has_more = [], 0, False
    # Streamed a few rows at a time and left as soon as the page is full: measuring a row reads all of its
    # text, so sizing limit + 1 rows of 100 KB up front cost 100 MB of reading for a page of five.
    for pk, size in sized.iterator(chunk_size=SIZE_CHUNK):
        if len(ids) == limit or (ids and total + size > max_bytes):
            has_more = True
            break
        ids.append(pk)
        total += size
    return load(queryset, ids), has_more


def pick(queryset, ids, *, size_of=MESSAGE_SIZE, max_bytes=None):
    """The rows of ``queryset`` with ``ids``, in that order, until the read budget is spent.

    Returns ``(rows, has_more)``; ids no longer in ``queryset`` are skipped.
    """
    sizes = dict(queryset.filter(pk__in=ids).annotate(read_size=text_size(*size_of))
                 .values_list("pk", "read_size"))
    present = [pk for pk in ids if pk in sizes]
    taken = cut([sizes[pk] for pk in present], len(present), max_bytes)
    return load(queryset, present[:taken]), taken < len(present)


def load(queryset, ids):
    """The rows of ``queryset`` with ``ids``, in the order of ``ids`` (one query)."""
    if not ids:
        return []
    rows = queryset.order_by().in_bulk(ids)
    return [rows[pk] for pk in ids if pk in rows]
