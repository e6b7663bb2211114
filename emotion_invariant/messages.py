"""One-line error messages: an ``OSError`` as its path and reason, and a
long list of offending items cut to its first few."""


def os_error_message(err):
    """An ``OSError`` in one line: the path it concerns, then the reason.

    Example
    -------
    >>> os_error_message(PermissionError(13, "Permission denied", "/o/t.txt"))
    '/o/t.txt: Permission denied'
    >>> os_error_message(OSError("disk gone"))
    'disk gone'
    """
    if err.filename is None or err.strerror is None:
        return str(err)
    return f"{err.filename}: {err.strerror}"


def shorten(items, limit=10):
    """The first ``limit`` items joined by commas, and how many are left out.

    For error messages that name offending items without printing
    thousands of them.

    Arguments
    ---------
    items : iterable of str
    limit : int

    Returns
    -------
    str

    Example
    -------
    >>> shorten(["a", "b", "c"], limit=2)
    'a, b (+1 more)'
    >>> shorten(["a"])
    'a'
    """
    items = list(items)
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more
