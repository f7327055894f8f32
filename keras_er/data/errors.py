"""The errors of a dataset that no source has, or that cannot be downloaded."""


class DatasetNotFoundError(FileNotFoundError):
    """No source had the dataset; the message lists every place looked."""


class DatasetDownloadError(DatasetNotFoundError):
    """The download failed (network, hash, archive); the message names the URL and the cause.

    A `DatasetNotFoundError`, so code that skips or falls back when a dataset
    is unavailable offline keeps doing so when the download cannot happen.
    """


class DownloadError(OSError):
    """One file could not be fetched; the message says what happened (unreachable, HTTP status, truncated, hash).

    Attributes:
        url: what was fetched.
        offline: True only when no server could be reached (name resolution,
            connection refused, no route, a connect timeout): the case where
            code that needs the network may skip. An answer that was an HTTP
            error, a body shorter than its Content-Length, a stall mid-body,
            a missing file in a local mirror or other bytes than the expected
            hash are False: failures, never skips.
    """

    def __init__(self, message, url, offline):
        super().__init__(message)
        self.url = url
        self.offline = offline
