"""The errors of a dataset that no source has, or that cannot be downloaded."""


class DatasetNotFoundError(FileNotFoundError):
    """No source had the dataset; the message lists every place looked."""


class DatasetDownloadError(DatasetNotFoundError):
    """The download failed (network, hash, archive); the message names the URL and the cause.

    A `DatasetNotFoundError`, so code that skips or falls back when a dataset
    is unavailable offline keeps doing so when the download cannot happen.
    """
