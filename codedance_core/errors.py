"""Errors users cause or meet, told in one line: what is wrong and what to do.

Every entry point (the `codedance` command, the flows' `python -m flows.X`) prints `describe(exc)`
as one `error:` line and exits 2 when it knows the exception; an exception it does not know is a
bug and keeps its traceback. `--debug` (or CODEDANCE_DEBUG=1) shows the traceback for every error.

`UserError` is what the library raises when it knows what the user must change; known
third-party failures (S3 credentials and endpoints, corrupt weights, files that are not parquet,
missing columns, broken YAML) are recognised by their type's module and name, so this module imports
none of those libraries and works in a worker image that lacks some of them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

DEBUG_ENV = "CODEDANCE_DEBUG"
EXIT_USER_ERROR = 2


class UserError(ValueError):
    """A fault the user can fix: `message` says what is wrong, `hint` what to do about it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


def debug_enabled() -> bool:
    """Whether tracebacks were asked for (`--debug` sets the variable, so workers see it too)."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def enable_debug() -> None:
    os.environ[DEBUG_ENV] = "1"


def describe(exc: BaseException) -> str | None:
    """One line for an error a user caused or met; None for anything else (a bug: show its traceback)."""
    chain = list(_chain(exc))
    # The cause a library wrapped (s3fs turns a refused key into a bare `PermissionError: Forbidden`)
    # names the fault better than its wrapper, so remote failures are looked for down the chain first.
    for classify in (_s3, _network, _local):
        for link in chain:
            if (line := classify(link)) is not None:
                return one_line(line)
    return None


def exit_on_user_error(main: Callable[[], Any]) -> Any:
    """Run an entry point; a known error becomes one `error:` line on stderr and exit status 2."""
    try:
        return main()
    except Exception as exc:
        line = None if debug_enabled() else describe(exc)
        if line is None:
            raise
        print_error(line)
        raise SystemExit(EXIT_USER_ERROR) from None


def entry_point(parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], Any]) -> Any:
    """Parse the command line (plus `--debug`) and run: a bad argument or a known error is one line, status 2."""

    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    prog = f"python -m {spec.name}" if spec is not None else parser.prog

    def usage_error(message: str) -> NoReturn:
        print_error(f"{message}; see `{prog} --help`")
        raise SystemExit(EXIT_USER_ERROR)

    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    parser.error = usage_error  # type: ignore[method-assign]  # argparse's own prints usage over two lines
    args = parser.parse_args()
    if args.debug:
        enable_debug()
    return exit_on_user_error(lambda: run(args))


def print_error(line: str) -> None:
    sys.stderr.write(f"error: {line}\n")
    sys.stderr.flush()


def fail(message: str, hint: str = "") -> NoReturn:
    raise UserError(message, hint)


def one_line(text: str) -> str:
    """Lines joined into one: after a line ending in ':' with a space, else with '; '."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    if not lines:
        return ""
    out = lines[0]
    for line in lines[1:]:
        out += (" " if out.endswith(":") else "; ") + line
    return out


# -- classification -------------------------------------------------------------------------------
def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and its explicit causes (`raise ... from`, and a Ray task's original error)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        ray_cause = getattr(current, "cause", None) if _is(current, "ray.", "RayTaskError") else None
        if isinstance(ray_cause, BaseException):  # the wrapper's text is the remote traceback: skip it
            current = ray_cause
            continue
        yield current
        current = current.__cause__


def _is(exc: BaseException, module: str, *names: str) -> bool:
    """Whether the exception's class (or a base) is one of `names` defined under `module`."""
    return any(cls.__module__.startswith(module) and cls.__name__ in names for cls in type(exc).__mro__)


_CREDENTIAL_HINT = "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
_AUTH_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "InvalidToken",
    "ExpiredToken",
    "403",
    "Forbidden",
    "401",
    "Unauthorized",
}


def _s3(exc: BaseException) -> str | None:
    if _is(exc, "botocore", "NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"):
        return f"no usable S3 credentials ({exc}); {_CREDENTIAL_HINT}"
    if _is(exc, "botocore", "EndpointConnectionError", "ConnectTimeoutError", "ProxyConnectionError"):
        return f"{exc}; check AWS_ENDPOINT_URL and that the S3 server is up"
    if _is(exc, "botocore", "ReadTimeoutError"):
        return f"{exc}; the S3 server did not answer in time: check AWS_ENDPOINT_URL and retry"
    if _is(exc, "botocore", "NoRegionError"):
        return "no S3 region configured; set AWS_REGION"
    if _is(exc, "botocore", "ClientError"):
        error = getattr(exc, "response", {}).get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", "")) or str(exc)
        operation = getattr(exc, "operation_name", "request")
        if code in _AUTH_CODES:
            return (
                f"S3 refused the {operation} request ({code}: {message}); {_CREDENTIAL_HINT}, "
                "and that the key may use this bucket"
            )
        if code == "NoSuchBucket":
            return f"S3 bucket does not exist ({message}); create it or fix the s3:// URI"
        return f"S3 {operation} failed ({code}: {message}); check the s3:// URI and AWS_ENDPOINT_URL"
    return None


def _network(exc: BaseException) -> str | None:
    connect = (
        _is(exc, "httpx", "ConnectError", "ConnectTimeout")
        or _is(exc, "httpcore", "ConnectError")
        or _is(exc, "openai", "APIConnectionError")
        or _is(exc, "requests", "ConnectionError")
        or _is(exc, "aiohttp", "ClientConnectorError")
    )
    if connect or isinstance(exc, ConnectionRefusedError):
        where = _request_url(exc)
        return (
            f"cannot connect{f' to {where}' if where else ''} ({exc or type(exc).__name__}); "
            "check the URL and that the server is running"
        )
    return None


def _request_url(exc: BaseException) -> str:
    try:
        return str(exc.request.url)  # type: ignore[attr-defined]  # httpx/openai errors carry their request
    except (AttributeError, RuntimeError):  # httpx raises RuntimeError when no request was attached
        return ""


def _local(exc: BaseException) -> str | None:
    if (
        isinstance(exc, UserError)
        or _is_library_value_error(exc)
        or _is(exc, "codedance_core", "IsolationUnavailable")
    ):
        return str(exc)
    if _is(exc, "yaml", "YAMLError"):
        return f"not valid YAML: {exc}"
    if _is(exc, "safetensors", "SafetensorError"):
        return (
            f"model weights cannot be read ({exc}): the .safetensors file is truncated or corrupt; "
            "copy the checkpoint again"
        )
    if _is(exc, "polars", "ColumnNotFoundError", "SchemaError", "SchemaFieldNotFoundError"):
        return f"the data does not have the expected columns ({_first_line(exc)}); check the file's schema"
    if _is(exc, "pyarrow", "ArrowInvalid") and "parquet" in str(exc).lower():
        return f"not a parquet file ({_first_line(exc)})"
    if _is(exc, "pydantic_core", "ValidationError"):
        return _validation_line(exc)
    # transformers' from_pretrained on a folder without weights
    if isinstance(exc, OSError) and "no file named" in str(exc):
        return f"{_first_line(exc)}; the model directory lacks its weights: copy the checkpoint again"
    if isinstance(exc, FileNotFoundError):
        return f"no such file or directory: {exc.filename or exc}; check the path"
    if isinstance(exc, (IsADirectoryError, NotADirectoryError)):
        return f"{exc.strerror or exc}: {exc.filename or ''}; check the path".replace(": ;", ";")
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename or exc}; check the file's owner and mode"
    return None


def _is_library_value_error(exc: BaseException) -> bool:
    """Our own `...Error(ValueError)` classes (ConfigError, NotParquetError, ...) exist to be shown to users."""
    cls = type(exc)
    return (
        isinstance(exc, ValueError)
        and cls.__module__.startswith("codedance_core")
        and cls.__name__.endswith("Error")
    )


def _validation_line(exc: BaseException) -> str:
    errors: list[dict[str, Any]] = exc.errors()  # type: ignore[attr-defined]
    parts = [f"{'.'.join(map(str, e['loc'])) or '(value)'}: {e['msg']}" for e in errors[:3]]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return f"invalid {getattr(exc, 'title', 'value')}: {'; '.join(parts)}{more}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
