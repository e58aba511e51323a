"""Request bodies read as strict JSON.

The standard library's parser takes `NaN`, `Infinity`, numbers beyond a double (`1e400`) and
lone surrogates (`"\\ud800"`), none of which is JSON; each then failed deep inside a route as a
500. orjson refuses them at the door, and FastAPI turns its decode error into a 422 that names
the place. Every router uses this route class.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())  # JSONDecodeError: FastAPI's 422
        return self._json


class StrictJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict
