# A gunicorn config that maps completely: migrate exits 0, and its JSON (or run -c) serves the app.
import os

bind = os.environ["TEST_BIND"]
workers = 2
worker_class = "uvicorn.workers.UvicornWorker"
timeout = 20
keepalive = 3
accesslog = "-"
max_requests = 500
raw_env = ["GREETING=from-gunicorn-conf"]
