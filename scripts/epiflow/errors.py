"""Exceptions that epiflow raises on bad input and on evaluation leakage."""


class InputError(ValueError):
    """Bad input: the message names the file, the line or row (1-based) and what was expected."""


class LeakageError(RuntimeError):
    """Held-out data (test cell line, test-fold chromosome, own Hi-C) reached a fitting step."""


class DownloadError(InputError):
    """A source could not be fetched, or its content does not match the expected checksum."""
