"""Which failures are worth retrying: faults of the outside world, never errors in data, config or code.

A lost Ray worker, node or job supervisor, a 5xx or a timeout from a server, a network fault talking
to S3: running the same stage again can succeed, so a stage that failed this way is retried (with
backoff, by its Prefect task). An error in the data, the config or the code fails at once: running
it again would only fail again, slower.
"""

from __future__ import annotations

_INFRA_NAMES = {
    # Ray: a worker, node, object or job supervisor went away under us.
    "RayActorError", "WorkerCrashedError", "NodeDiedError", "ObjectLostError", "OwnerDiedError",
    "RaySystemError", "ActorDiedError", "ActorUnavailableError", "ObjectFetchTimedOutError", "RayJobLost",
    # HTTP and S3 clients: the server or the network failed.
    "ConnectError", "ConnectTimeout", "ReadTimeout", "WriteTimeout", "PoolTimeout", "RemoteProtocolError",
    "EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ClientConnectorError",
    "ServerDisconnectedError",
    # The sandbox lost a worker process.
    "WorkerDied",
}


def is_infrastructure_fault(error: BaseException) -> bool:
    """True for faults of the outside world (retry), False for errors in data, config or code.

    The whole chain of causes is looked at: a stage that wraps a lost worker in its own error is
    still a lost worker."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__name__ in _INFRA_NAMES or isinstance(current, (ConnectionError, TimeoutError)):
            return True
        status = getattr(getattr(current, "response", None), "status_code", None)
        if isinstance(status, int) and (status >= 500 or status == 429):
            return True
        current = current.__cause__ or current.__context__
    return False
