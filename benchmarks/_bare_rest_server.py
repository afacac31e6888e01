"""The HTTP floor for `bench_rest_roundtrip.py`: a bare Starlette route that answers a constant.

`GET /v1/sessions/{id}` returns the JSON in `BARE_BODY_FILE` (a real session, fetched from our server once),
under the same uvicorn settings as `managed-sessions serve --transport http`, so the same SDK call parses the
same bytes: what is left between the two is our server's work.

    python benchmarks/_bare_rest_server.py PORT
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = Path(os.environ["BARE_BODY_FILE"]).read_bytes()


async def constant(_request: Request) -> Response:
    return Response(BODY, media_type="application/json")


app = Starlette(routes=[Route("/v1/sessions/{session_id}", constant)])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False)
