"""datasette's own ASGI app over a sqlite file the caller made (DATASETTE_DB), as `datasette serve`
would serve it, plus one route added the way datasette documents (a register_routes plugin) that
says which process answered: GET /-/pid.

Every other path is datasette's: /<db>/<table>.json?_shape=array, /<db>.json?sql=..., its HTML.
"""

import os
import sys

from datasette import hookimpl
from datasette.app import Datasette
from datasette.plugins import pm
from datasette.utils.asgi import Response


async def which_process() -> Response:
    return Response.json({"pid": os.getpid()})


@hookimpl
def register_routes():
    return [(r"^/-/pid$", which_process)]


pm.register(sys.modules[__name__], name="arbiter_test_pid")
app = Datasette(files=[os.environ["DATASETTE_DB"]], settings={"num_sql_threads": 1}).app()
