"""One line instead of a traceback: how the `smdo` command reports what went wrong.

Every command's exception ends here (cli/main.py), so commands raise plain exceptions with a
message naming what is wrong and what to do; none needs its own try/except to stay readable.
Set SMDO_DEBUG=1 to get the traceback instead.
"""
from __future__ import annotations

import errno
import os
import ssl
import sys
from typing import NoReturn

import click

DEBUG_ENV = "SMDO_DEBUG"


def fail(message: str, status: int = 1) -> NoReturn:
    """Print `error: MESSAGE` (one line) on stderr and exit with `status`."""
    click.echo(f"error: {' '.join(message.split())}", err=True)
    sys.exit(status)


def describe(exc: BaseException) -> str:
    """A one-line message for an exception no command turned into a message of its own."""
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return (f"{exc.strerror or exc}: another process is listening there; stop it or choose another "
                f"port (--port, SMDO_PORT or --listen)")
    if isinstance(exc, FileNotFoundError):
        return f"no such file or folder: {exc.filename}" if exc.filename else str(exc)
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename}; check its owner and mode" if exc.filename else str(exc)
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}; check the key, certificate and passphrase"
    if isinstance(exc, (ValueError, LookupError, RuntimeError, OSError)) and str(exc):
        return str(exc)
    return f"{type(exc).__name__}: {exc} (unexpected; run again with {DEBUG_ENV}=1 for the traceback)"


class ErrorReportingGroup(click.Group):
    """A click group that turns every error of its sub-commands into one `error: ...` line."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            fail(exc.format_message() + hint, exc.exit_code)
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except click.Abort:
            raise
        except Exception as exc:  # the last line of defence: a user never sees a traceback
            if os.environ.get(DEBUG_ENV):
                raise
            fail(describe(exc))
