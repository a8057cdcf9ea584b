"""A route for the hot endpoints: documented and guarded like any other, called without FastAPI's
per-request dependency machinery.

FastAPI resolves an endpoint's parameters and dependencies anew for every request (it walks the
dependency tree and validates each parameter): about half of the framework's CPU per accepted
message. An endpoint whose parameters are only path parameters (strings), the ``Request`` and
dependencies that themselves take only the request (``require(...)``) needs none of that. A
:class:`DirectRoute` is declared like any APIRoute (``route_class=DirectRoute``), so the OpenAPI
document and the role matrix see the same parameters and roles, and its handler calls each
dependency with the request and the endpoint with their results (FastAPI's documented extension
point: a custom APIRoute overriding ``get_route_handler``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response


class DirectRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint
        if not inspect.iscoroutinefunction(endpoint):
            raise TypeError(f"{endpoint.__name__}: a DirectRoute endpoint is a coroutine function")
        dependencies: list[tuple[str, Callable[[Request], Any]]] = []
        for dependency in self.dependant.dependencies:
            takes = [parameter.annotation for parameter in inspect.signature(dependency.call).parameters.values()]
            if dependency.name is None or takes not in ([Request], ["Request"]):
                raise TypeError(f"{endpoint.__name__}: a DirectRoute dependency takes the request alone")
            dependencies.append((dependency.name, dependency.call))
        path = [param.name for param in self.dependant.path_params]
        request_name = self.dependant.request_param_name
        other = (self.dependant.query_params or self.dependant.header_params or self.dependant.cookie_params
                 or self.dependant.body_params)
        if other or any(param.field_info.annotation is not str for param in self.dependant.path_params):
            raise TypeError(f"{endpoint.__name__}: a DirectRoute endpoint takes string path parameters, the "
                            "request and request-only dependencies")

        async def handler(request: Request) -> Response:
            values: dict[str, Any] = {name: request.path_params[name] for name in path}
            if request_name:
                values[request_name] = request
            for name, call in dependencies:
                values[name] = await call(request)
            return await endpoint(**values)  # type: ignore[no-any-return]

        return handler
