"""The errors that mean bad input or unfinished work, in a module without torch: the CLI reports
them (one line, exit 2 or 1) from commands that never load the network, such as `preset`."""


class DataError(ValueError):
    """The dataset is missing or a file is not valid FashionMNIST IDX data."""


class ImageError(ValueError):
    """The input cannot be classified; the message says why."""


class ReproduceError(RuntimeError):
    """Some runs did not finish (stopped, diverged, failed or interrupted)."""
