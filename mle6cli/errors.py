"""Exceptions raised by the core library; the CLI turns each into one line on stderr and exit 1."""


class Mle6Error(Exception):
    """A failure the user can act on: bad input, missing data, an impossible configuration."""

    exit_code = 1


class ConvSizeError(Mle6Error, ValueError):
    """A convolution geometry that has no valid output (torch would refuse it too)."""


class DataError(Mle6Error):
    """Data that is missing, unreadable or malformed."""


class DeviceError(Mle6Error):
    """A device that does not exist or cannot be used here."""


class ConfigError(Mle6Error, ValueError):
    """Training options that make no sense (a negative learning rate, zero epochs, …).

    The CLI refuses such values as usage errors first; this guards the library's own callers
    and configs read back by --resume.
    """


class PlatformError(Mle6Error):
    """A system without what mle6 needs from Linux and macOS (file locks, fork)."""


def posix_module(name: str, use: str):
    """Import the POSIX module `name` (e.g. "fcntl"), or fail in one line saying what it is for (`use`)."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise PlatformError(f"mle6 needs Linux or macOS: this system has no {name} ({use})") from None


def debug_from_env() -> bool:
    """MLE6_DEBUG=1 (or yes, true, on) shows tracebacks, like --debug; 0, no, false, off or empty do not."""
    import os

    return os.environ.get("MLE6_DEBUG", "").strip().lower() not in ("", "0", "no", "false", "off")
