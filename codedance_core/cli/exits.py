"""How a command stops on an error the user can fix: one `error:` line on stderr, exit status 2.

Commands raise (or let through) the library's errors; `main.app` turns the known ones into that
line (codedance_core/errors.py). A command that catches an error itself, to stop before doing more,
hands it to `exit_with` so the line reads the same; under --debug the error keeps its traceback.
"""

from __future__ import annotations

import typer

from codedance_core.errors import EXIT_USER_ERROR, debug_enabled, describe, one_line, print_error


def exit_with(exc: BaseException) -> typer.Exit:
    """Print `exc` as one line and return the Exit(2) to raise; re-raise `exc` under --debug."""
    if debug_enabled():
        raise exc
    print_error(describe(exc) or one_line(str(exc)) or type(exc).__name__)
    return typer.Exit(EXIT_USER_ERROR)


def exit_message(message: str) -> typer.Exit:
    """Print `message` as one `error:` line and return the Exit(2) to raise."""
    print_error(one_line(message))
    return typer.Exit(EXIT_USER_ERROR)


def check_reachable(base_url: str, what: str = "server") -> None:
    """UserError unless something answers HTTP at `base_url` (any status: a 401 still means it is up).

    A generation server that is down would otherwise show up as every item failing, or as every
    item scored 'hard' by the filter, minutes later."""
    import httpx

    from codedance_core.errors import UserError

    try:
        httpx.get(f"{base_url.rstrip('/')}/models", timeout=10.0)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise UserError(
            f"cannot connect to the {what} at {base_url} ({exc})",
            "check the URL and that the server is running",
        ) from None
